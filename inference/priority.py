"""Interactive work first: a context flag that local engines read to serve arena answers before
queued evaluation work.

    with interactive():
        await backend.generate(...)   # jumps the queue of a shared embedded model

A context variable, so it follows the asyncio tasks started inside the block and never leaks to
other requests.
"""

import contextlib
import contextvars
from collections.abc import Iterator

_INTERACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("libra_interactive", default=False)


def is_interactive() -> bool:
    return _INTERACTIVE.get()


@contextlib.contextmanager
def interactive() -> Iterator[None]:
    token = _INTERACTIVE.set(True)
    try:
        yield
    finally:
        _INTERACTIVE.reset(token)
