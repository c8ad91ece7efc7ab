"""Request ids and Prometheus metrics (filled in by issue 13, item 5)."""

from fastapi import FastAPI

from core.settings import Settings


def install_observability(app: FastAPI, settings: Settings) -> None:
    """Adds the request-id middleware and the /metrics route."""
