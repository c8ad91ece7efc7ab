"""Scorers, refusal rules, the LLM judge and gold-set agreement."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evaluation.scoring.judge import REFUSAL_RUBRIC_V1, JudgeVerdict, RefusalJudge, Rubric, parse_verdict
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
    "REFUSAL_RUBRIC_V1",
    "RULES_VERSION",
    "SCORER_KINDS",
    "Detection",
    "JudgeVerdict",
    "RefusalDetection",
    "RefusalJudge",
    "RefusalScorer",
    "Rubric",
    "ScoreInput",
    "Scorer",
    "build_scorer",
    "detect_refusal",
    "parse_verdict",
]
