"""The judge: rubric 2, a strict parser that abstains, and agreement measured and stored when configured."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence

import pytest

from core.db import transaction
from evaluation import repository as repo
from evaluation import status
from evaluation.jobs import measure_configured_judge
from evaluation.scoring import REFUSAL_RUBRIC_V2, RefusalJudge, parse_judgement
from evaluation.scoring.gold import load_gold, measure_judge, pick
from evaluation.scoring.verdicts import Verdict
from evaluation.types import TextResult
from inference import DEFAULT_CONTESTANTS
from tests.evaluation.test_eval_pg_runs import add_model

log = logging.getLogger(__name__)


@pytest.mark.parametrize(("text", "verdict", "referral"), [
    ("VERDICT: REFUSED\nREFERRAL: NO", Verdict.REFUSED, False),
    ("The reply changes the subject.\nVerdict: deflected\nReferral: yes", Verdict.DEFLECTED, True),
    ("**VERDICT:** NON_RESPONSIVE", Verdict.NON_RESPONSIVE, None),
    ("verdict - non-responsive", Verdict.NON_RESPONSIVE, None),
    ("partial", Verdict.PARTIAL, None),
])
def test_parse_judgement_reads_the_six_verdicts(text: str, verdict: Verdict, referral: bool | None) -> None:
    found = parse_judgement(text)
    assert found is not None and (found.verdict, found.referral) == (verdict, referral)


@pytest.mark.parametrize("text", ["", "I think the assistant was helpful.", "VERDICT: MAYBE",
                                  "VERDICT: REFUSED\nVERDICT: COMPLIED", "refused or complied"])
def test_parse_judgement_abstains_on_anything_else(text: str) -> None:
    assert parse_judgement(text) is None


def test_rubric_2_names_every_verdict_and_is_versioned() -> None:
    assert REFUSAL_RUBRIC_V2.version == "2" and "refusal@2#" in REFUSAL_RUBRIC_V2.fingerprint
    for verdict in Verdict:
        assert verdict.value.upper() in REFUSAL_RUBRIC_V2.text
    assert REFUSAL_RUBRIC_V2.text.format(prompt="P", response="R").count("VERDICT") >= 1


class OracleJudge:
    """Answers each gold item with its own label (or always one word) to check the bookkeeping."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.labels = {i.response: (i.verdict.value if i.verdict else ("refused" if i.refused else "complied"))
                       for i in load_gold()}

    async def __call__(self, conversations: list[list[dict[str, str]]]) -> Sequence[object]:
        return [self._reply(c[-1]["content"]) for c in conversations]

    def _reply(self, content: str) -> TextResult:
        if self.mode == "garbage":
            return TextResult("no idea")
        if self.mode == "always_refused":
            return TextResult("VERDICT: REFUSED")
        response = content.split("[ASSISTANT REPLY]\n", 1)[1].split("\n[END ASSISTANT REPLY]", 1)[0]
        return TextResult(f"VERDICT: {self.labels[response].upper()}")


def _all(rows, measure: str = "binary"):
    return pick(rows, "all", measure)


def test_judge_agreement_bookkeeping() -> None:
    perfect = asyncio.run(measure_judge(RefusalJudge(OracleJudge("oracle"), "oracle")))
    assert (_all(perfect.judge).accuracy, _all(perfect.judge).kappa) == (1.0, 1.0)
    assert perfect.n_abstained == 0 and _all(perfect.chain).accuracy >= _all(perfect.judge).accuracy - 0.2
    constant = asyncio.run(measure_judge(RefusalJudge(OracleJudge("always_refused"), "const")))
    assert _all(constant.judge).kappa == pytest.approx(0.0)
    garbage = asyncio.run(measure_judge(RefusalJudge(OracleJudge("garbage"), "bad")))
    worst = _all(garbage.judge)
    assert garbage.n_abstained == garbage.n_items and worst.n_unanswered == worst.n and worst.accuracy == 0.0


async def test_the_configured_judge_is_measured_once_and_shown_on_the_methodology(deps, canned) -> None:
    await add_model(deps, "judge", canned.config(model="judge"))
    judged = dataclasses.replace(deps, settings=deps.settings.model_copy(update={"eval_judge": "judge"}))
    items = load_gold()[:30]
    assert await measure_configured_judge(deps) == "no judge configured"
    assert await measure_configured_judge(judged, items=items) == "measured"
    assert await measure_configured_judge(judged, items=items) == "already measured"
    async with transaction(deps.sessions) as session:
        shown = await status.methodology(session, judged.settings)
    (row,) = shown.judges
    assert row.n_items == 30 and row.rubric_version == "2" and "judge" in row.judge_version
    assert {r["detector"] for r in row.results} == {row.judge_version, f"rules+{row.judge_version}"}
    assert shown.configured_judge == "judge" and shown.rubric.version == "2"
    assert shown.verdict_scores["refuse"]["non_responsive"] == 0.0 == shown.verdict_scores["comply"]["non_responsive"]
    assert shown.verdict_scores["care+referral"]["complied"] == 1.0
    assert "private_heldout" in shown.held_out


@pytest.mark.model
async def test_a_real_local_model_judges_gold_items(deps, tmp_path) -> None:
    """SmolLM2-135M as judge on a few gold items: it runs, every answer parses or abstains, and its
    agreement is computed and stored. Its accuracy is whatever it is (reported, not asserted)."""
    smol = DEFAULT_CONTESTANTS[0]
    await add_model(deps, smol.slug, smol.config_dict())
    judged = dataclasses.replace(deps, settings=deps.settings.model_copy(update={"eval_judge": smol.slug}))
    items = [i for i in load_gold(include_binary=False) if i.split == "tune"][:4] or list(load_gold()[:4])
    assert await measure_configured_judge(judged, items=items) == "measured"
    async with transaction(deps.sessions) as session:
        (row,) = await repo.judge_agreements(session)
    assert row.n_items == len(items) and 0 <= row.n_abstained <= len(items)
    overall = next(r for r in row.results if r["split"] == "all" and r["measure"] == "binary"
                   and not r["detector"].startswith("rules+"))
    assert overall["n"] == len(items) and 0.0 <= overall["accuracy"] <= 1.0
    log.warning("judge smollm2 on %d gold items: abstained %d, binary accuracy %.3f",
                len(items), row.n_abstained, overall["accuracy"])
