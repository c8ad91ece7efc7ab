"""What the API shows of evaluations: status, progress and public summaries, never an item."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evaluation.models import RunReason

ShownStatus = Literal["pending", "running", "finished", "failed"]


class EvaluateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: str | None = Field(default=None, description="Suite to run (default: LIBRA_EVAL_SUITE).")


class ProgressOut(BaseModel):
    total: int = Field(description="Items planned for this run.")
    generated: int = Field(description="Items answered by the model so far.")
    scored: int = Field(description="Items scored so far.")
    fraction: float = Field(description="Share of the run's work done, generation and scoring together.")


class CategoryOut(BaseModel):
    axis: str
    category: str
    mean: float | None = Field(description="Mean of the category's task means, over `ok` items only.")
    tasks: int
    n_items: int
    n_ok: int
    statuses: dict[str, int] = Field(description="Items per status; only `ok` items enter the mean.")


class AxisOut(BaseModel):
    axis: str
    score: float | None = Field(description="Mean of the category means.")
    categories: int
    missing: list[str] = Field(description="Categories of the suite with no score: the axis is partial.")


class ResultsOut(BaseModel):
    run_id: int
    finished_at: datetime | None
    cycle_id: str
    n_items: int = Field(description="Public items; held-out items are never shown.")
    statuses: dict[str, int]
    axes: list[AxisOut]
    categories: list[CategoryOut]


class RunOut(BaseModel):
    id: int
    suite: str
    status: ShownStatus
    reason: RunReason
    cycle_id: str
    sample_seed: int | None
    suite_version: str | None
    run_fingerprint: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = Field(description="Why the run failed, when it did.")
    progress: ProgressOut | None = None


class EvaluationOut(BaseModel):
    """A model's evaluation as its submitter follows it: the latest run, and the latest results."""

    model: str
    suite: str
    status: ShownStatus | Literal["none"]
    latest_run: RunOut | None
    results: ResultsOut | None = Field(description="Summary of the latest finished run, if any.")


class RefusalAgreementOut(BaseModel):
    rules_version: str
    gold_items: int
    held_out_split: str = Field(description="The newest split, measured once before any rule change.")
    held_out_accuracy: float
    results: list[dict[str, Any]]
    note: str
