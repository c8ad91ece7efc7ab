"""The procrastinate job app on the service's own Postgres. Tasks are registered by ``server.jobs``."""

import procrastinate

from core.db import libpq_url


def create_job_app(database_url: str) -> procrastinate.App:
    # A short pool timeout: with the database away, a worker fails (and is restarted by its supervisor)
    # within seconds instead of waiting 30 s for a connection.
    connector = procrastinate.PsycopgConnector(conninfo=libpq_url(database_url), timeout=5.0)
    return procrastinate.App(connector=connector)
