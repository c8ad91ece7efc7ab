"""Job registration: every domain's procrastinate blueprint, plus the periodic schedule from settings."""

import procrastinate

from arena import tasks as arena_tasks
from server.core.jobs import create_job_app
from server.core.settings import Settings


def build_job_app(database_url: str, settings: Settings) -> procrastinate.App:
    app = create_job_app(database_url)
    app.add_tasks_from(arena_tasks.build_blueprint(), namespace="arena")
    # The cron is configuration, so the periodic schedule is attached here rather than in the domain.
    app.periodic(cron=settings.housekeeping_cron, periodic_id="housekeeping")(
        app.tasks["arena:fail_stale_battles"]
    )
    return app
