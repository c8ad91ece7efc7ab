"""The procrastinate job app on the service's own Postgres. Tasks are registered by ``server.jobs``."""

import procrastinate

from core.db import libpq_url


def create_job_app(database_url: str) -> procrastinate.App:
    connector = procrastinate.PsycopgConnector(conninfo=libpq_url(database_url))
    return procrastinate.App(connector=connector)
