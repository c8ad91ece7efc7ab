"""What a request answers when the database is unreachable (filled in by issue 13, item 2)."""

from fastapi import FastAPI


def install_fault_handlers(app: FastAPI) -> None:
    """Registers the handlers that turn a lost database into a 503 with Retry-After."""
