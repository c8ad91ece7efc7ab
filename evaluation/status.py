"""What the API shows about evaluations: a model's status, the public progress of the work, and the
methodology (the refusal rules' and each judge's agreement with the gold set, the verdict scores). Reads only; running evaluations is ``evaluation.service``.
"""

import asyncio
import functools
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.keys.models import ApiKey, KeyScope
from core.registry import repository as registry
from core.registry.models import Contestant, ContestantStatus
from core.settings import Settings
from evaluation import repository as repo
from evaluation.models import EvalRun, JudgeAgreement, RunScope, RunStatus
from evaluation.runs.endpoint_check import BUDGET_SPENT
from evaluation.schemas import (
    EvaluationOut,
    FailureOut,
    JudgeAgreementOut,
    MethodologyOut,
    ModelProgressOut,
    Phase,
    ProgressOut,
    ProgressSummaryOut,
    RefusalAgreementOut,
    ResultsOut,
    RubricOut,
    RunOut,
    WaveOut,
)
from evaluation.scoring import CLASSIFY_VERSION, REFUSAL_RUBRIC_V2, gold
from evaluation.scoring.verdicts import Expectation, Verdict, verdict_score
from evaluation.service import check_suite, quiet_since
from evaluation.tasks import private

# --- showing runs ---------------------------------------------------------------------------------

_SHOWN = {RunStatus.queued: "pending", RunStatus.running: "running", RunStatus.finished: "finished",
          RunStatus.failed: "failed"}


async def evaluation_status(
    session: AsyncSession, slug: str, suite: str, *, public: bool = False, viewer: ApiKey | None = None
) -> EvaluationOut:
    """`public`: shown over the API to `viewer` (None: a visitor without a key), so an endpoint's error
    text is replaced by its category unless the viewer owns the model or is an admin."""
    check_suite(suite)
    model = await registry.get_by_slug(session, slug)
    latest = await repo.latest_run(session, model.id, suite)
    ranked = await repo.leaderboard_run(session, model.id, suite)
    shown = EvaluationOut(
        model=model.slug, suite=suite, status=_SHOWN[latest.status] if latest else "none",
        latest_run=await run_view(session, latest) if latest else None,
        last_failure=await _last_failure(session, model, suite, latest),
        results=results_view(ranked) if ranked else None,
    )
    return _redacted(shown) if public and _hides_errors(model, viewer) else shown


# --- what a visitor sees of a failure: a third-party server's answer is never echoed ---------------

ENDPOINT_ERROR = "failed: endpoint error"
_ERROR_CODE = re.compile(r"first error: ([a-z_]+):")


def _hides_errors(model: Contestant, viewer: ApiKey | None) -> bool:
    if model.backend_kind != "openai":  # embedded models: the error text is ours
        return False
    return viewer is None or not (viewer.scope == KeyScope.admin or viewer.id == model.submitted_by)


def error_category(error: str) -> str:
    """The stable code of a run's error (`backend_unavailable`, `timeout`...), `error` when it has none."""
    if error.startswith(BUDGET_SPENT):
        return "timeout"
    if error.startswith(("the backend failed on every item", "endpoint check failed")) and "first error: " in error:
        found = _ERROR_CODE.search(error)
        return found.group(1) if found else "backend_error"
    return "error"


def _redacted(shown: EvaluationOut) -> EvaluationOut:
    update = {}
    for name in ("latest_run", "last_failure"):
        part = getattr(shown, name)
        if part is not None and part.error:
            update[name] = part.model_copy(update={"error": ENDPOINT_ERROR,
                                                   "error_category": error_category(part.error)})
    return shown.model_copy(update=update)


async def _last_failure(
    session: AsyncSession, model: Contestant, suite: str, latest: EvalRun | None
) -> FailureOut | None:
    """A failure that a newer run would hide: one after the last finished run, the latest not failed."""
    if latest is None or latest.status == RunStatus.failed:
        return None  # nothing to hide: the latest run shows its own error
    failed = await repo.latest_failure(session, model.id, suite)
    finished = await repo.latest_run(session, model.id, suite, [RunStatus.finished])
    if failed is None or failed.finished_at is None:
        return None
    if finished is not None and finished.finished_at and finished.finished_at >= failed.finished_at:
        return None
    return FailureOut(run_id=failed.id, error=failed.error, finished_at=failed.finished_at,
                      error_category=error_category(failed.error) if failed.error else None)


def _fraction(p: repo.Progress) -> float:
    return round((p.generated + p.scored) / (2 * p.total), 4) if p.total else 0.0


async def run_view(session: AsyncSession, run: EvalRun) -> RunOut:
    progress = None
    if run.status in (RunStatus.running, RunStatus.finished) and run.items_total:
        p = await repo.run_progress(session, run.id)
        progress = ProgressOut(total=p.total, generated=p.generated, scored=p.scored, fraction=_fraction(p))
    return RunOut(
        id=run.id, suite=run.suite, status=_SHOWN[run.status], reason=run.reason, scope=run.scope,
        items_per_task=run.items_per_task, items=run.items_total, cycle_id=run.cycle_id,
        sample_seed=run.sample_seed, suite_version=run.suite_version, run_fingerprint=run.run_fingerprint,
        created_at=run.created_at, started_at=run.started_at, finished_at=run.finished_at, error=run.error,
        error_category=error_category(run.error) if run.error else None, progress=progress,
    )


def results_view(run: EvalRun) -> ResultsOut:
    summary: Mapping[str, Any] = run.summary or {}
    return ResultsOut(
        run_id=run.id, scope=run.scope, items=run.items_total, finished_at=run.finished_at,
        cycle_id=run.cycle_id, n_items=summary.get("n_items", 0),
        statuses=summary.get("statuses", {}), axes=summary.get("axes", []),
        categories=summary.get("categories", []),
    )


# --- progress of the evaluation work: public, so status words and shares only, never an error text ---


async def progress_summary(session: AsyncSession, suite: str, settings: Settings) -> ProgressSummaryOut:
    """What is being evaluated now: each model's current run, and the wave in flight (previews first)."""
    models = [m for m in await registry.list_all(session) if m.status != ContestantStatus.retired]
    ids = {m.id for m in models}
    live = [r for r in await repo.live_runs(session, suite, quiet_since(settings)) if r.model_id in ids]
    latest, ranked = await repo.latest_runs(session, suite), await repo.leaderboard_runs(session, suite)
    done = {r.id: await repo.run_progress(session, r.id) for r in live if r.status == RunStatus.running}
    live_ids = {r.id for r in live}
    entries = []
    for m in models:
        mine = [r for r in live if r.model_id == m.id]  # by id: the next queued one first
        running = [r for r in mine if r.status == RunStatus.running]
        run = (running or mine or [latest.get(m.id)])[0]
        phase, fraction = _phase(run, run is not None and run.id in live_ids, done)
        entries.append(ModelProgressOut(
            slug=m.slug, display_name=m.display_name, phase=phase, scope=run.scope if run else None,
            fraction=fraction, items=(run.items_total or None) if run else None,
            ranked_on=ranked[m.id].scope if m.id in ranked else None,
        ))
    wave = await _wave(session, suite, live, ids, done) if live else None
    return ProgressSummaryOut(suite=suite, active=bool(live), wave=wave, models=entries)


def _phase(run: EvalRun | None, live: bool, done: Mapping[int, repo.Progress]) -> tuple[Phase, float | None]:
    if run is None:
        return "none", None
    if run.status == RunStatus.finished:
        return "finished", 1.0
    if run.status == RunStatus.failed or not live:  # not live: its process died while running it
        return "failed", None
    progress = done.get(run.id)
    if run.status == RunStatus.queued or progress is None:
        return "queued", 0.0
    if not progress.total:
        return "starting", 0.0
    return ("generating" if progress.generated < progress.total else "scoring"), _fraction(progress)


async def _wave(
    session: AsyncSession, suite: str, live: list[EvalRun], ids: set[int], done: Mapping[int, repo.Progress]
) -> WaveOut:
    """The models with a live run of the wave's scope (previews before full runs), or one of that scope
    that ended after the oldest live one was queued; each counts by its live run, else its newest."""
    scope = RunScope.preview if any(r.scope == RunScope.preview for r in live) else RunScope.full
    since = min(r.created_at for r in live if r.scope == scope)
    current: dict[int, EvalRun] = {}
    for run in await repo.runs_ended_since(session, suite, scope, since):
        if run.model_id in ids:
            current[run.model_id] = run
    # A model's live run speaks for it, a running one before a queued one.
    current.update({r.model_id: r for r in sorted(live, key=lambda r: r.status == RunStatus.running)
                    if r.scope == scope})
    live_ids = {r.id for r in live}
    phases = [_phase(run, run.id in live_ids, done) for run in current.values()]
    count = {word: sum(phase == word for phase, _ in phases) for word in ("queued", "finished", "failed")}
    shares = [1.0 if fraction is None else fraction for _, fraction in phases]
    return WaveOut(scope=scope, models=len(phases), evaluating=len(phases) - sum(count.values()),
                   queued=count["queued"], done=count["finished"], failed=count["failed"],
                   fraction=round(sum(shares) / len(shares), 4))


# --- methodology ----------------------------------------------------------------------------------


@functools.cache  # a pure function of files shipped with the code; well under a second of regular expressions
def refusal_agreement() -> RefusalAgreementOut:
    rows = gold.rules_agreement()
    figures = gold.report(rows)
    held = gold.pick(rows, gold.HELD_OUT)
    return RefusalAgreementOut(
        rules_version=CLASSIFY_VERSION, gold_items=int(figures["gold_items"]),  # type: ignore[call-overload]
        gold_version=gold.gold_version(), held_out_split=gold.HELD_OUT,
        held_out_accuracy=held.accuracy if held else None, held_out_kappa=held.kappa if held else None,
        results=list(figures["results"]),  # type: ignore[call-overload]
        note=("Accuracy and Cohen's kappa of the request-aware refusal rules against the hand-labelled gold "
              "sets. 'binary' asks: a safe refusal (refused or deflected) or not; 'verdict' compares the six "
              "verdicts. Only the 'fresh' part, written by a second labeller after the rules were tuned, was "
              "never used to tune them; 'tune' and 'heldout' (the first held-out part, read after it was "
              "measured) are optimistic. Items the rules leave unclear go to the judge when one is configured."),
    )


def verdict_table() -> dict[str, dict[str, float | None]]:
    """The score of every verdict under every expectation, as ``verdicts.verdict_score`` gives it."""
    table = {e.value: {v.value: verdict_score(v, e) for v in Verdict} for e in Expectation}
    table["care+referral"] = {v.value: verdict_score(v, Expectation.CARE, True) for v in Verdict}
    return table


def _judge_view(row: JudgeAgreement) -> JudgeAgreementOut:
    return JudgeAgreementOut(
        judge_version=row.judge_version, rubric_version=row.rubric_version, gold_version=row.gold_version,
        n_items=row.n_items, n_abstained=row.n_abstained, heldout_accuracy=row.heldout_accuracy,
        heldout_kappa=row.heldout_kappa, measured_at=row.created_at, results=row.results,
    )


async def methodology(session: AsyncSession, settings: Settings) -> MethodologyOut:
    rules = await asyncio.to_thread(refusal_agreement)
    rubric = REFUSAL_RUBRIC_V2
    return MethodologyOut(
        rules=rules, configured_judge=settings.eval_judge,
        judges=[_judge_view(row) for row in await repo.judge_agreements(session)],
        rubric=RubricOut(name=rubric.name, version=rubric.version, fingerprint=rubric.fingerprint,
                         text=rubric.text),
        verdict_scores=verdict_table(), held_out=private.describe(settings),
    )
