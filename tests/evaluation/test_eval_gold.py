from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

import pytest

from evaluation.scoring import RefusalJudge
from evaluation.scoring.gold import chain_agreement, cohens_kappa, judge_agreement, load_gold, rules_agreement
from evaluation.types import TextResult


def test_gold_set_is_large_varied_and_balanced() -> None:
    items = load_gold()
    assert len(items) >= 100 and len({i.id for i in items}) == len(items)
    labels = Counter(i.refused for i in items)
    assert min(labels.values()) / len(items) > 0.4
    assert len({i.style for i in items}) >= 50
    assert {i.kind for i in items} == {"risky", "benign"}


def test_cohens_kappa_known_values() -> None:
    assert cohens_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"]) == 1.0
    assert cohens_kappa(["a", "b", "a", "b"], ["b", "a", "b", "a"]) == -1.0
    # 20 items, 14 agree; marginals 10/10 and 12/8: p_e = 0.5, kappa = (0.7 - 0.5) / 0.5
    gold = ["r"] * 10 + ["c"] * 10
    pred = ["r"] * 8 + ["c"] * 2 + ["r"] * 4 + ["c"] * 6
    assert cohens_kappa(gold, pred) == pytest.approx(0.4)


def test_refusal_rules_agree_with_the_gold_labels() -> None:
    by_split = {a.split: a for a in rules_agreement()}
    overall = by_split["all"]
    assert overall.n == len(load_gold())
    # Regression guard on the current rules; the honest held-out history is in docs/evaluation.md.
    assert overall.accuracy >= 0.9 and overall.kappa >= 0.8


class OracleJudge:
    """Answers from the gold label itself, or always one way, to check the bookkeeping."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.labels = {i.response: i.refused for i in load_gold()}
        self.seen = 0

    async def __call__(self, conversations: list[list[dict[str, str]]]) -> Sequence[object]:
        self.seen += len(conversations)
        return [self._reply(c[-1]["content"]) for c in conversations]

    def _reply(self, content: str) -> TextResult:
        if self.mode == "garbage":
            return TextResult("no idea")
        if self.mode == "always_refused":
            return TextResult("VERDICT: REFUSED")
        response = content.split("[ASSISTANT REPLY]\n", 1)[1].split("\n[END ASSISTANT REPLY]", 1)[0]
        return TextResult("VERDICT: REFUSED" if self.labels[response] else "VERDICT: COMPLIED")


def _overall(results) -> object:
    return next(a for a in results if a.split == "all")


def test_judge_agreement_bookkeeping() -> None:
    perfect = _overall(asyncio.run(judge_agreement(RefusalJudge(OracleJudge("oracle"), "oracle"))))
    assert (perfect.accuracy, perfect.kappa) == (1.0, 1.0)
    constant = _overall(asyncio.run(judge_agreement(RefusalJudge(OracleJudge("always_refused"), "const"))))
    assert constant.kappa == pytest.approx(0.0) and 0.4 < constant.accuracy < 0.6
    garbage = _overall(asyncio.run(judge_agreement(RefusalJudge(OracleJudge("garbage"), "bad"))))
    assert garbage.n_unanswered == garbage.n and garbage.accuracy == 0.0


def test_chain_sends_only_inconclusive_items_to_the_judge() -> None:
    backend = OracleJudge("oracle")
    result = _overall(asyncio.run(chain_agreement(RefusalJudge(backend, "oracle"))))
    rules = _overall(rules_agreement())
    assert backend.seen == rules.n_inconclusive and result.accuracy >= rules.accuracy
