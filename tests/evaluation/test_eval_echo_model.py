"""Incapacity is not safety: a model that only echoes, or only babbles, earns no safety credit.

Babble used to score *safe* on instruction hierarchy (no secret leaked) and over-refusal (nothing
refused), so a model that could not answer anything ranked well on safety. Here two test doubles
answer every safety item of the default suite that uses the project's own data, each conversation
built exactly as the runner builds it (template, attack transform, per-item generator), and every
item they get must score 0 in every category.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from evaluation.scoring import ScoreInput, build_scorer
from evaluation.tasks.registry import Registry
from evaluation.tasks.sampling import item_rng
from evaluation.tasks.spec import LoadedTask
from evaluation.types import ScoredItem, Status

Conversation = Sequence[Mapping[str, str]]
SEED = 20260
VOCABULARY = (
    "harbor", "violet", "engine", "maple", "copper", "saddle", "lantern", "glacier", "mosaic", "thistle",
    "orbit", "velvet", "quarry", "ember", "falcon", "pebble", "canyon", "walnut", "ribbon", "meadow",
)


class EchoOnlyModel:
    """Answers every conversation with its last user message, word for word."""

    def answer(self, conversation: Conversation) -> str:
        return next(m["content"] for m in reversed(conversation) if m["role"] == "user")


class BabbleOnlyModel:
    """Answers every conversation with 20 to 40 words drawn at random from a fixed vocabulary."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def answer(self, conversation: Conversation) -> str:
        size = int(self._rng.integers(20, 41))
        return " ".join(self._rng.choice(VOCABULARY, size=size))


def _project_safety_tasks(registry: Registry) -> list[LoadedTask]:
    names = registry.suite_task_names("default")
    chosen = [
        name for name in names
        if registry.task(name).axis.value == "safety" and registry.task(name).source.kind == "project"
    ]
    return [registry.load(name) for name in chosen]


def _score_task(task: LoadedTask, model: EchoOnlyModel | BabbleOnlyModel) -> list[ScoredItem]:
    template = task.spec.template
    inputs = []
    for item in task.items:
        messages = tuple(template.render(item, item_rng(SEED, task.name, item.id)))
        inputs.append(ScoreInput(item, template.user_prompt(item), model.answer(messages), task.name, messages))
    return asyncio.run(build_scorer(task.spec.scorer).score(inputs))


def _models() -> list[EchoOnlyModel | BabbleOnlyModel]:
    return [EchoOnlyModel(), BabbleOnlyModel(np.random.default_rng(SEED))]


@pytest.mark.parametrize("model", _models(), ids=lambda m: type(m).__name__)
def test_a_model_that_cannot_answer_earns_no_safety_credit(model: EchoOnlyModel | BabbleOnlyModel,
                                                           registry: Registry) -> None:
    tasks = _project_safety_tasks(registry)
    categories = {task.spec.category for task in tasks}
    # The four safety categories must all be covered, or the test would prove less than it says.
    assert {"direct_risk", "adversarial", "instruction_hierarchy", "over_refusal"} <= categories
    task_means: dict[str, list[float]] = defaultdict(list)
    credited: list[str] = []
    for task in tasks:
        results = _score_task(task, model)
        assert all(r.status is Status.OK for r in results), task.name
        credited += [f"{task.name}/{r.item_id}" for r in results if r.score != 0.0]
        task_means[task.spec.category].append(float(np.mean([r.score for r in results])))
    safety = float(np.mean([np.mean(means) for means in task_means.values()]))
    assert credited == [], f"{len(credited)} items credited, e.g. {credited[:5]}"
    assert safety == 0.0


@pytest.mark.parametrize("model", _models(), ids=lambda m: type(m).__name__)
def test_every_safety_scorer_names_the_verdict_non_responsive(model: EchoOnlyModel | BabbleOnlyModel,
                                                              registry: Registry) -> None:
    # The leaderboard counts the share of non-responsive answers from details["verdict"].
    for task in _project_safety_tasks(registry):
        verdicts = {r.details.get("verdict") for r in _score_task(task, model)}
        assert verdicts == {"non_responsive"}, (task.name, verdicts)
