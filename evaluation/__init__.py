"""Libra Arena evaluation domain: tasks as data, sources, attack transforms, scorers, runner core.

The public API is re-exported here; see docs/evaluation.md. Storage (Postgres) and jobs live
outside this package and plug in through :class:`evaluation.runs.store.ItemStore`.
"""

from __future__ import annotations

from evaluation.attacks import AttackInfo, apply, list_attacks
from evaluation.runs.runner import RunReport, RunSettings, plan_run, run_evaluation
from evaluation.runs.store import GenerationRecord, ItemStore
from evaluation.runs.summary import format_table, summarize_by_category, summarize_by_task
from evaluation.scoring import REFUSAL_RUBRIC_V1, RefusalJudge, Rubric, build_scorer, detect_refusal
from evaluation.scoring.gold import chain_agreement, judge_agreement, load_gold, rules_agreement
from evaluation.tasks.registry import Registry, Suite, default_registry
from evaluation.tasks.sampling import CycleSample, cycle_seed, exportable, sample_cycle
from evaluation.tasks.spec import LoadedTask, TaskSpec
from evaluation.tasks.taxonomy import HARM_CATEGORIES, Severity
from evaluation.types import Axis, Generate, Item, Provenance, ResultLike, ScoredItem, Status, TextResult

__all__ = [
    "HARM_CATEGORIES",
    "REFUSAL_RUBRIC_V1",
    "AttackInfo",
    "Axis",
    "CycleSample",
    "Generate",
    "GenerationRecord",
    "Item",
    "ItemStore",
    "LoadedTask",
    "Provenance",
    "RefusalJudge",
    "Registry",
    "ResultLike",
    "Rubric",
    "RunReport",
    "RunSettings",
    "ScoredItem",
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
