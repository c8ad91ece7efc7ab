"""Job registration: every domain's procrastinate blueprint, plus the periodic schedule from settings."""

import procrastinate

from arena import jobs as arena_jobs
from core.jobs import create_job_app
from core.settings import Settings
from evaluation import jobs as evaluation_jobs
from server.leaderboard import jobs as leaderboard_jobs

JUDGE_AGREEMENT_CRON = "*/5 * * * *"


def build_job_app(database_url: str, settings: Settings) -> procrastinate.App:
    app = create_job_app(database_url)
    app.add_tasks_from(arena_jobs.build_blueprint(), namespace="arena")
    # The cron is configuration, so the periodic schedule is attached here rather than in the domain.
    app.periodic(cron=settings.housekeeping_cron, periodic_id="housekeeping")(
        app.tasks["arena:fail_stale_battles"]
    )
    # Pair scores follow the fit, so they are refreshed on the snapshot's schedule.
    app.periodic(cron=settings.leaderboard_cron, periodic_id="pair_scores")(app.tasks["arena:refresh_pair_scores"])
    app.add_tasks_from(evaluation_jobs.build_blueprint(), namespace=evaluation_jobs.NAMESPACE)
    app.periodic(cron=settings.eval_cron, periodic_id="reevaluate")(app.tasks["evaluation:reevaluate"])
    app.periodic(cron=settings.eval_recover_cron, periodic_id="recover")(app.tasks["evaluation:recover_stalled"])
    # Measuring the configured judge is a no-op once done, so a fixed, frequent schedule costs nothing
    # and makes "measured when configured" happen within minutes of a worker starting.
    app.periodic(cron=JUDGE_AGREEMENT_CRON, periodic_id="measure_judge")(app.tasks["evaluation:measure_judge"])
    # The namespace "ranking" is what evaluation.jobs looks for to queue a recompute after a run.
    app.add_tasks_from(leaderboard_jobs.build_blueprint(), namespace="ranking")
    app.periodic(cron=settings.leaderboard_cron, periodic_id="leaderboard")(app.tasks["ranking:periodic_snapshot"])
    return app
