"""Scorers, the request-aware refusal rules, the LLM judge and gold-set agreement."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evaluation.scoring.classify import CLASSIFY_VERSION, Classification, classify
from evaluation.scoring.judge import (
    REFUSAL_RUBRIC_V1,
    REFUSAL_RUBRIC_V2,
    Judgement,
    JudgeVerdict,
    RefusalJudge,
    Rubric,
    parse_judgement,
    parse_verdict,
)
from evaluation.scoring.refusal import RULES_VERSION, Detection, RefusalDetection, detect_refusal
from evaluation.scoring.refusal_scorer import RefusalScorer
from evaluation.scoring.scorers import (
    ConstraintScorer,
    ExactScorer,
    LeakScorer,
    MultipleChoiceScorer,
    NumericScorer,
    RegexScorer,
    ScoreInput,
    Scorer,
)

_SIMPLE = {
    "exact": ExactScorer,
    "regex": RegexScorer,
    "numeric": NumericScorer,
    "multiple_choice": MultipleChoiceScorer,
    "constraints": ConstraintScorer,
    "leak": LeakScorer,
}
SCORER_KINDS = (*_SIMPLE, "refusal")


def build_scorer(spec: Mapping[str, Any], judge: RefusalJudge | None = None) -> Scorer:
    """The scorer a task declares; only ``refusal`` scorers use the judge."""
    kind = spec.get("kind")
    if kind == "refusal":
        return RefusalScorer(spec, judge)
    if kind not in _SIMPLE:
        raise ValueError(f"unknown scorer kind {kind!r}; expected one of {SCORER_KINDS}")
    return _SIMPLE[kind](dict(spec))


__all__ = [
    "CLASSIFY_VERSION",
    "REFUSAL_RUBRIC_V1",
    "REFUSAL_RUBRIC_V2",
    "RULES_VERSION",
    "SCORER_KINDS",
    "Classification",
    "Detection",
    "JudgeVerdict",
    "Judgement",
    "RefusalDetection",
    "RefusalJudge",
    "RefusalScorer",
    "Rubric",
    "ScoreInput",
    "Scorer",
    "build_scorer",
    "classify",
    "detect_refusal",
    "parse_judgement",
    "parse_verdict",
]
