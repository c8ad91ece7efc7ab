"""Libra Arena evaluation domain: tasks as data, sources, attack transforms, scorers, runner core.

The public API is re-exported here; see docs/evaluation.md. Storage (Postgres) and jobs live
outside this package and plug in through :class:`evaluation.store.ItemStore`.
"""

from __future__ import annotations

from evaluation.attacks import AttackInfo, apply, list_attacks
from evaluation.registry import Registry, Suite, default_registry
from evaluation.runner import ItemResult, RunReport, RunSettings, plan_run, run_evaluation
from evaluation.sampling import CycleSample, cycle_seed, exportable, sample_cycle
from evaluation.scoring import REFUSAL_RUBRIC_V1, RefusalJudge, Rubric, build_scorer, detect_refusal
from evaluation.scoring.gold import chain_agreement, judge_agreement, load_gold, rules_agreement
from evaluation.store import GenerationRecord, ItemStore, ScoreRecord
from evaluation.summary import format_table, summarize_by_category, summarize_by_task
from evaluation.tasks import LoadedTask, TaskSpec
from evaluation.taxonomy import HARM_CATEGORIES, Severity
from evaluation.types import Axis, Generate, Item, Provenance, ResultLike, Status, TextResult

__all__ = [
    "HARM_CATEGORIES",
    "REFUSAL_RUBRIC_V1",
    "AttackInfo",
    "Axis",
    "CycleSample",
    "Generate",
    "GenerationRecord",
    "Item",
    "ItemResult",
    "ItemStore",
    "LoadedTask",
    "Provenance",
    "RefusalJudge",
    "Registry",
    "ResultLike",
    "Rubric",
    "RunReport",
    "RunSettings",
    "ScoreRecord",
    "Severity",
    "Status",
    "Suite",
    "TaskSpec",
    "TextResult",
    "apply",
    "build_scorer",
    "chain_agreement",
    "cycle_seed",
    "default_registry",
    "detect_refusal",
    "exportable",
    "format_table",
    "judge_agreement",
    "list_attacks",
    "load_gold",
    "plan_run",
    "rules_agreement",
    "run_evaluation",
    "sample_cycle",
    "summarize_by_category",
    "summarize_by_task",
]
