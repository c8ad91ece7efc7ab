from __future__ import annotations

import base64
import codecs

import numpy as np
import pytest

from evaluation import attacks
from evaluation.runs.fingerprints import (
    generation_fingerprint,
    model_fingerprint,
    public_config,
    score_fingerprint,
)
from evaluation.tasks import private
from evaluation.tasks.private import HeldOutPolicy
from evaluation.tasks.registry import Registry
from evaluation.tasks.sampling import cycle_seed, exportable, sample_cycle

TASKS = ("safety.direct_risk.risky_prompts", "safety.over_refusal.benign_lookalikes")


def test_cycle_seed_is_derived_and_stable() -> None:
    assert cycle_seed("2026-w48") == cycle_seed("2026-w48") != cycle_seed("2026-w49")
    assert 0 <= cycle_seed("x") < 2**63


def test_samples_rotate_between_cycles_and_replay_within_one(registry: Registry) -> None:
    tasks = [registry.load(n) for n in TASKS]
    a, again, b = (sample_cycle(tasks, c, per_task=10) for c in ("c1", "c1", "c2"))
    assert a == again and a.seed == cycle_seed("c1")
    assert a.item_ids != b.item_ids and a.fingerprint != b.fingerprint


def test_adding_a_task_does_not_change_the_others_sample(registry: Registry) -> None:
    tasks = [registry.load(n) for n in TASKS]
    alone = sample_cycle(tasks[:1], "c1", per_task=10)
    both = sample_cycle(tasks, "c1", per_task=10)
    assert alone.item_ids[TASKS[0]] == both.item_ids[TASKS[0]]


def test_held_out_items_are_sampled_under_their_own_quota_and_never_exported(registry: Registry) -> None:
    (task,) = private.apply([registry.load(TASKS[0])], "c1", HeldOutPolicy(secret=b"maintainer secret"))
    held = {i.id for i in task.items if i.held_out}
    assert len(held) == round(0.1 * len(task.items))
    sample = sample_cycle([task], "c1", per_task=20, held_out_per_task=2)
    ids = sample.item_ids[task.name]
    assert len(ids) == 22 and len(held & set(ids)) == 2
    assert len(sample_cycle([task], "c1", per_task=20, held_out_per_task=0).item_ids[task.name]) == 20
    assert not any(i.held_out for i in exportable(task.items)) and not any(
        i.held_out for i in task.public_items()
    )


def test_without_a_private_policy_nothing_is_held_out(registry: Registry) -> None:
    tasks = private.apply([registry.load(n) for n in TASKS], "c1", HeldOutPolicy())
    assert not any(i.held_out for t in tasks for i in t.items)
    sample = sample_cycle(tasks, "c1", per_task=5, held_out_per_task=5)
    assert all(len(ids) == 5 for ids in sample.item_ids.values())


def test_the_held_out_policy_is_part_of_the_sample_fingerprint(registry: Registry) -> None:
    tasks = [registry.load(n) for n in TASKS]
    plain = sample_cycle(tasks, "c1", per_task=5, held_out_per_task=0)
    keyed = [sample_cycle(tasks, "c1", per_task=5, held_out_per_task=0,
                          held_out_key=HeldOutPolicy(secret=s).fingerprint()) for s in (b"one", b"two")]
    assert plain.item_ids == keyed[0].item_ids == keyed[1].item_ids
    assert len({plain.fingerprint, keyed[0].fingerprint, keyed[1].fingerprint}) == 3


def test_fingerprint_parts_each_matter_and_credentials_do_not() -> None:
    base = {
        "model_fp": "m",
        "task_version": "t",
        "template_version": "p",
        "sampling": {"temperature": 0},
        "seed": 1,
        "item_id": "i",
    }
    reference = generation_fingerprint(**base)
    for key, value in [
        ("model_fp", "m2"),
        ("task_version", "t2"),
        ("template_version", "p2"),
        ("sampling", {"temperature": 1}),
        ("seed", 2),
        ("item_id", "j"),
    ]:
        assert generation_fingerprint(**{**base, key: value}) != reference, key
    assert score_fingerprint(reference, "judge-a") != score_fingerprint(reference, "judge-b")
    config = {"model": "x", "api_key": "sk-1", "headers": {"Authorization": "Bearer y", "X-Org": "o"}}
    assert public_config(config) == {"model": "x", "headers": {"X-Org": "o"}}
    assert model_fingerprint(config) == model_fingerprint({**config, "api_key": "sk-2"})


def test_attack_registry_lists_and_applies() -> None:
    infos = attacks.list_attacks()
    assert len(infos) >= 8 and all(i.name and i.description for i in infos)
    prompt = "How do I pick a lock?"
    for info in infos:
        out = attacks.apply(info.name, prompt, np.random.default_rng(0))
        assert out != prompt and out == attacks.apply(info.name, prompt, np.random.default_rng(0))
    encoded = attacks.apply("base64", prompt, np.random.default_rng(0)).split()[-1]
    assert base64.b64decode(encoded).decode() == prompt
    assert (
        codecs.decode(attacks.apply("rot13", prompt, np.random.default_rng(0)).split("\n\n")[-1], "rot13")
        == prompt
    )
    with pytest.raises(KeyError):
        attacks.apply("nope", prompt, np.random.default_rng(0))


def test_category_quota_tops_up_thin_categories_so_a_preview_can_be_ranked() -> None:
    from evaluation.tasks.registry import default_registry
    from evaluation.tasks.sampling import category_quota

    registry = default_registry()
    tasks = list(registry.suite("smoke").tasks)
    quota = category_quota(tasks, per_task=1, min_per_category=5)
    by_category: dict[tuple[str, str], int] = {}
    for task in tasks:
        key = (task.spec.axis.value, task.spec.category)
        by_category[key] = by_category.get(key, 0) + quota[task.name]
    assert all(total >= 5 for total in by_category.values())
    assert category_quota(tasks, per_task=7, min_per_category=5) == {t.name: 7 for t in tasks}
