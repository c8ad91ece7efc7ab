"""Each leaderboard row's scores per category and per attack transform (the page's heat map): the same
items, clusters, held-out handling and interval method as the axes, reproducible from the seed."""

import pytest

from core.db import transaction
from core.registry import repository as registry
from core.settings import Settings
from evaluation.types import ScoredItem, Status
from server.leaderboard import service
from server.leaderboard.jobs import snapshot_config
from server.seed import seed_defaults

REQUIRED = (("capability", ("knowledge",)), ("safety", ("direct_risk", "adversarial")))
BASE64, ROT13 = "safety.adversarial.base64", "safety.adversarial.rot13"  # tasks of the real registry


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, database_url=None, eval_suite="smoke", leaderboard_bootstrap_rounds=300,
                    eval_min_items_per_category=5)


@pytest.fixture
async def seeded(runtime) -> list:
    async with transaction(runtime.sessions) as session:
        await seed_defaults(session)
        return list(await registry.list_all(session))


def _item(task: str, k: int, score: float | None, axis: str, category: str, **extra) -> ScoredItem:
    status = Status.OK if score is not None else Status.PARSE_ERROR
    return ScoredItem(task, str(k), status, score, axis=axis, category=category, **extra)


def _items(knowledge: list[float], direct: list[float], base64: list[float], rot13: list[float]) -> list:
    items = [_item("cap.a", k, s, "capability", "knowledge") for k, s in enumerate(knowledge)]
    items += [_item("direct", k, s, "safety", "direct_risk", labels={"cluster": f"p{k}"})
              for k, s in enumerate(direct)]
    for task, scores in ((BASE64, base64), (ROT13, rot13)):
        items += [_item(task, k, s, "safety", "adversarial", labels={"cluster": f"p{k}"},
                        held_out=k == 0) for k, s in enumerate(scores)]
    return items


def _rows(settings: Settings, models: list, items: dict) -> dict:
    inputs = service.Inputs(models=models, helpfulness=[], safety=[], style_cells={}, items=items)
    body = service.payload(service.compute(inputs, snapshot_config(settings, REQUIRED)), models, inputs)
    return {r["slug"]: r for r in body["models"]}


def test_categories_and_attacks_are_macro_averages_with_intervals(seeded, settings) -> None:
    model = seeded[0]
    items = _items([1, 1, 0, 1, 1, 0], [1, 1, 1, 1, 0, 1, 1, 1], [1, 0, 0, 1, 1, 0], [1, 1, 1, 1, 1, 1])
    items.append(_item(ROT13, 99, None, "safety", "adversarial"))  # a status: in no mean, in no count
    row = _rows(settings, [model], {model.id: items})[model.slug]
    cats = row["categories"]
    assert set(cats) == {"knowledge", "direct_risk", "adversarial"}
    assert cats["knowledge"]["axis"] == "capability" and cats["adversarial"]["axis"] == "safety"
    assert cats["knowledge"]["value"] == pytest.approx(4 / 6, abs=1e-4)
    # Adversarial: the mean of its two task means (3/6 and 6/6), not of its twelve items pooled alike.
    assert cats["adversarial"]["value"] == pytest.approx((3 / 6 + 1) / 2, abs=1e-4)
    assert cats["adversarial"]["items"] == 12  # held-out items count in the aggregate, as in the axes
    assert set(row["attacks"]) == {"base64", "rot13"}  # "direct" wraps nothing: no attack
    assert row["attacks"]["base64"]["value"] == pytest.approx(0.5, abs=1e-4)
    assert row["attacks"]["rot13"]["value"] == 1.0 and row["attacks"]["rot13"]["items"] == 6
    for band in [*cats.values(), *row["attacks"].values()]:
        assert 0 <= band["lower"] <= band["value"] <= band["upper"] <= 1
    assert row["attacks"]["rot13"]["lower"] < 1.0  # 6/6 still has width (the Jeffreys pseudo-cluster)
    # The safety axis is the macro-average of its categories, the same numbers the heat map shows.
    assert row["safety"]["value"] == pytest.approx(
        (cats["direct_risk"]["value"] + cats["adversarial"]["value"]) / 2, abs=1e-3)


def test_breakdown_is_reproducible_and_other_models_do_not_move_it(seeded, settings) -> None:
    first, second = seeded[:2]
    mine = _items([1, 0, 1, 1, 0, 1], [1, 0, 1, 1, 0, 1, 0, 1], [0, 0, 1, 1, 0, 1], [1, 0, 1, 1, 1, 1])
    alone = _rows(settings, [first], {first.id: mine})[first.slug]
    again = _rows(settings, [first], {first.id: mine})[first.slug]
    other = _items([0] * 6, [0] * 8, [0] * 6, [0] * 6)
    together = _rows(settings, [first, second], {first.id: mine, second.id: other})[first.slug]
    assert alone["categories"] == again["categories"] == together["categories"]
    assert alone["attacks"] == together["attacks"]


def test_a_model_without_items_has_an_empty_breakdown(seeded, settings) -> None:
    scored, empty = seeded[:2]
    rows = _rows(settings, [scored, empty], {scored.id: _items([1] * 6, [1] * 8, [1] * 6, [1] * 6)})
    assert rows[empty.slug]["categories"] == {} and rows[empty.slug]["attacks"] == {}


def test_every_adversarial_task_of_the_registry_names_its_attack() -> None:
    attacks = service.task_attacks()
    assert attacks[BASE64] == "base64" and attacks[ROT13] == "rot13"
    assert all(name.startswith("safety.") for name in attacks)
    assert "safety.direct_risk.risky_prompts" not in attacks
