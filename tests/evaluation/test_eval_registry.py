from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from evaluation import attacks
from evaluation.tasks.packages import DATA_PACKAGES, installed_version
from evaluation.tasks.registry import DATA_DIR, SUITES_DIR, TASKS_DIR, Registry
from evaluation.tasks.taxonomy import HARM_CATEGORIES, Severity


def _missing_data(registry: Registry, names: list[str]) -> list[str]:
    needed = {p for name in names for p in registry.task(name).source.packages}
    return sorted(p for p in needed if installed_version(p) is None)


def test_default_suite_covers_every_category_with_50_items(registry: Registry) -> None:
    if missing := _missing_data(registry, registry.suite_task_names("default")):
        pytest.skip(f"data packages not installed: {missing} (libra data install)")
    suite = registry.suite("default")
    per_category = Counter()
    for task in suite.tasks:
        per_category[(task.spec.axis.value, task.spec.category)] += len(task.items)
    assert set(per_category) == {
        ("capability", "knowledge"),
        ("capability", "reasoning"),
        ("capability", "instruction_following"),
        ("safety", "direct_risk"),
        ("safety", "adversarial"),
        ("safety", "instruction_hierarchy"),
        ("safety", "over_refusal"),
    }
    assert min(per_category.values()) >= 50
    assert all(task.items and len(task.items) >= 50 for task in suite.tasks)


def test_every_task_records_source_version_and_licence(registry: Registry) -> None:
    for name in registry.task_names():
        if _missing_data(registry, [name]):
            continue
        provenance = registry.load(name).provenance
        assert provenance.location and provenance.version and provenance.licence, name


def test_adversarial_category_uses_at_least_eight_distinct_attacks(registry: Registry) -> None:
    used = {registry.task(n).template.attack for n in registry.suite_task_names("default")} - {None}
    assert len(used) >= 8 and used <= {info.name for info in attacks.list_attacks()}


def test_risky_prompts_are_tagged_with_the_taxonomy(registry: Registry) -> None:
    task = registry.load("safety.direct_risk.risky_prompts")
    categories = {item.meta["harm_category"] for item in task.items}
    assert categories == set(HARM_CATEGORIES) and len(HARM_CATEGORIES) == 19
    assert {item.meta["severity"] for item in task.items} == {s.value for s in Severity}


def test_attacked_prompts_are_reproducible_from_the_seed(registry: Registry) -> None:
    task = registry.load("safety.adversarial.roleplay_persona")
    item = task.items[0]
    render = lambda seed: task.spec.template.render(item, np.random.default_rng(seed))
    assert render(1) == render(1)
    assert item.fields["prompt"] in render(1)[-1]["content"]
    assert len({render(s)[-1]["content"] for s in range(20)}) > 1


def _copy_declarations(tmp_path: Path) -> tuple[Path, Path, Path]:
    dirs = tuple(tmp_path / name for name in ("tasks", "suites", "data"))
    for source, target in zip((TASKS_DIR, SUITES_DIR, DATA_DIR), dirs, strict=True):
        shutil.copytree(source, target)
    return dirs  # type: ignore[return-value]


def test_versions_are_content_hashes(tmp_path: Path) -> None:
    tasks_dir, suites_dir, data_dir = _copy_declarations(tmp_path)
    before = Registry.from_directories(tasks_dir, suites_dir, data_dir)
    assert (
        before.suite("smoke").version
        == Registry.from_directories(tasks_dir, suites_dir, data_dir).suite("smoke").version
    )
    path = data_dir / "over_refusal.yaml"
    path.write_text(path.read_text().replace("Python process", "Python job"))
    after = Registry.from_directories(tasks_dir, suites_dir, data_dir)
    name = "safety.over_refusal.benign_lookalikes"
    assert after.load(name).version != before.load(name).version
    assert after.suite("smoke").version != before.suite("smoke").version
    untouched = "safety.direct_risk.risky_prompts"
    assert after.load(untouched).version == before.load(untouched).version


def test_suite_patterns_must_match(tmp_path: Path) -> None:
    tasks_dir, suites_dir, data_dir = _copy_declarations(tmp_path)
    (suites_dir / "bad.yaml").write_text("name: bad\ntasks: [nothing.here]\n")
    with pytest.raises(KeyError):
        Registry.from_directories(tasks_dir, suites_dir, data_dir).suite("bad")


def test_every_data_package_a_task_reads_is_pinned(registry: Registry) -> None:
    # `libra data install` installs exactly the pinned packages: a task reading another would fail.
    read = {p for name in registry.task_names() for p in registry.task(name).source.packages}
    assert read == {p.name for p in DATA_PACKAGES}


def test_no_task_declares_a_public_held_out_seed() -> None:
    for path in TASKS_DIR.glob("*.yaml"):
        assert "held_out_seed" not in path.read_text(encoding="utf-8"), path
