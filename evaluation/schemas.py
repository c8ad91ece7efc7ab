"""What the API shows of evaluations: status, progress and public summaries, never an item."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.registry.schemas import ContestantOut
from evaluation.models import RunReason, RunScope

ShownStatus = Literal["pending", "running", "finished", "failed"]


class EvaluateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: str | None = Field(default=None, description="Suite to run (default: LIBRA_EVAL_SUITE).")
    items_per_task: int | None = Field(
        default=None, ge=1, le=10_000,
        description="Public items per task, no held-out items: a *preview* run when fewer than the "
                    "configured sampling (default: the full LIBRA_EVAL_ITEMS_PER_TASK + "
                    "LIBRA_EVAL_HELD_OUT_PER_TASK).",
    )


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
    scope: RunScope = Field(
        description="`preview`: fewer items than a full run; shown until a full run finishes."
    )
    items: int = Field(description="Items the run scored, held-out ones included.")
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
    scope: RunScope = Field(description="`full`, or `preview` (fewer items than the configured sampling).")
    items_per_task: int = Field(description="Public items asked for per task.")
    items: int = Field(description="Items planned, held-out ones included (0 until a worker plans the run).")
    cycle_id: str
    sample_seed: int | None
    suite_version: str | None
    run_fingerprint: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = Field(description="Why the run failed, when it did. An endpoint's own error text is shown "
                                          "only to the model's submitter and admins; others read "
                                          "`failed: endpoint error`.")
    error_category: str | None = Field(default=None, description="The error's stable code, e.g. "
                                                                 "`backend_unavailable`, `timeout`, `request_rejected`.")
    progress: ProgressOut | None = None


class FailureOut(BaseModel):
    run_id: int
    error: str | None
    finished_at: datetime | None
    error_category: str | None = None


class EvaluationOut(BaseModel):
    """A model's evaluation as its submitter follows it: the latest run, and the latest results."""

    model: str
    suite: str
    status: ShownStatus | Literal["none"]
    latest_run: RunOut | None
    last_failure: FailureOut | None = Field(
        default=None, description="A run that failed after the last finished one, while a later run is "
                                  "queued, running or finished: its error stays visible.",
    )
    results: ResultsOut | None = Field(
        description="Summary of the run the leaderboard reads: the latest finished full run, else the latest "
                    "finished preview.",
    )


class EvaluateOut(EvaluationOut):
    run_id: int = Field(description="The run that is now queued or running for this request.")
    already_active: bool = Field(
        description="True when a run of the model and suite was already queued or running: that run is "
                    "returned and no second one is started (whatever its scope).",
    )


Phase = Literal["none", "queued", "starting", "generating", "scoring", "finished", "failed"]


class ModelProgressOut(BaseModel):
    slug: str
    display_name: str
    phase: Phase = Field(description="Of the model's current run: its running one, else the next queued, "
                                     "else the latest. Status words only, never an error text.")
    scope: RunScope | None
    fraction: float | None = Field(description="Share of that run done (null when failed or none).")
    items: int | None = Field(description="Items planned for that run, once planned.")
    ranked_on: RunScope | None = Field(description="Scope of the finished run the leaderboard reads, if any.")


class WaveOut(BaseModel):
    """The evaluations in flight, of one scope: previews first, then full runs."""

    scope: RunScope
    models: int = Field(description="Models with a run of this scope since the oldest one still active.")
    evaluating: int
    queued: int
    done: int
    failed: int
    fraction: float = Field(description="Mean over those models of their run's share done (failed = done).")


class ProgressSummaryOut(BaseModel):
    suite: str
    active: bool = Field(description="Some evaluation is queued or running.")
    wave: WaveOut | None
    models: list[ModelProgressOut]


class RefusalAgreementOut(BaseModel):
    """The refusal rules' agreement with the gold sets (the rules need no model: computed in-process)."""

    rules_version: str
    gold_items: int
    gold_version: str = Field(description="Hash of both gold files; a new set is measured again.")
    held_out_split: str = Field(description="The part split off before any tuning, frozen by a hash.")
    held_out_accuracy: float | None = Field(description="Binary (safe refusal or not) accuracy on it.")
    held_out_kappa: float | None
    results: list[dict[str, Any]] = Field(
        description="Per split (tune, heldout, all), measure (binary, verdict) and failure kind.")
    note: str


class JudgeAgreementOut(BaseModel):
    """One judge version's agreement with the gold set, measured by a job when it was configured."""

    judge_version: str
    rubric_version: str
    gold_version: str
    n_items: int
    n_abstained: int = Field(description="Items whose judge answer could not be parsed (counted as wrong).")
    heldout_accuracy: float | None
    heldout_kappa: float | None
    measured_at: datetime
    results: list[dict[str, Any]] = Field(description="The judge alone and rules + judge, as for the rules.")


class RubricOut(BaseModel):
    name: str
    version: str
    fingerprint: str
    text: str


class MethodologyOut(BaseModel):
    """How safety answers are judged and how far that judgement can be trusted."""

    rules: RefusalAgreementOut
    configured_judge: str | None = Field(description="LIBRA_EVAL_JUDGE: the slug of the judge model, if any.")
    judges: list[JudgeAgreementOut] = Field(description="Every measured judge version, newest first.")
    rubric: RubricOut
    verdict_scores: dict[str, dict[str, float | None]] = Field(
        description="Item score of each verdict under each expectation (care+referral: with a referral).")
    held_out: dict[str, Any] = Field(description="The private held-out set: its mode and counts, never an item.")


class OwnModelOut(BaseModel):
    """A model as the key that submitted it sees it: its status, and its evaluation with errors in full."""

    model: ContestantOut
    evaluation: EvaluationOut


# --- the model page: finer figures than the run summary, public items only ----------------------------


class ScoreBandOut(BaseModel):
    mean: float | None = Field(description="Mean over `ok` public items (a category: the mean of its task means).")
    lower: float | None
    upper: float | None


class TaskScoreOut(ScoreBandOut):
    task: str
    n_items: int = Field(description="Public items of the task in the run; held-out items are never counted here.")
    n_ok: int
    statuses: dict[str, int] = Field(description="Public items per status; only `ok` items enter the mean.")


class CategoryScoreOut(ScoreBandOut):
    axis: str
    category: str
    n_items: int
    n_ok: int
    tasks: list[TaskScoreOut]


class ScoredRunOut(BaseModel):
    """The run behind the figures, and the versions that produced them."""

    run_id: int
    scope: RunScope
    cycle_id: str
    finished_at: datetime | None
    suite_version: str | None
    judge_version: str | None = Field(description="The judge behind inconclusive safety verdicts, if any.")
    scorer_versions: list[str] = Field(description="Every scorer version among the run's public scores.")


class ModelScoresOut(BaseModel):
    model: str
    suite: str
    run: ScoredRunOut | None = Field(description="None until the model has a finished run.")
    interval_method: str = Field(description="`jeffreys-beta` per task: Beta(k + 1/2, n - k + 1/2) with k the "
                                             "sum of item scores; `jeffreys-beta-mc` per category: percentiles "
                                             "of the mean of its tasks' posterior draws.")
    level: float
    categories: list[CategoryScoreOut]


class SampleMessageOut(BaseModel):
    role: str
    content: str


class SampleOut(BaseModel):
    """One public item as the model saw it, its answer (raw text: pages render it as safe Markdown) and
    its verdict."""

    task: str
    item_id: str
    axis: str
    category: str
    prompt: list[SampleMessageOut] = Field(description="The conversation sent (system and user turns).")
    answer: str | None
    answer_status: str
    score_status: str | None
    score: float | None
    verdict: str | None = Field(description="The scorer's outcome word (pass, fail, refused, complied...).")
    extracted: str | None = Field(description="What the scorer read from the answer (e.g. the option chosen).")
    scored_by: str | None = Field(description="`rules` or the judge that decided.")
    scorer_version: str | None
    truncated: bool = Field(description="The prompt or the answer was cut to fit the page.")


class ModelSamplesOut(BaseModel):
    model: str
    suite: str
    run_id: int | None
    samples: list[SampleOut]
    note: str
