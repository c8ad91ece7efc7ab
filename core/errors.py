"""The one error type of the service: a message, an HTTP status and a stable code.

Domain code raises ``LibraError``; the web layer turns it into the JSON error shape
``{"error": {"code": ..., "message": ..., "field": ...}}`` and the CLI into one line on stderr.
"""

from dataclasses import dataclass
from dataclasses import field as dataclass_field


@dataclass
class LibraError(Exception):
    message: str
    status: int = 400
    code: str = "bad_request"
    field: str | None = None
    # Extra HTTP response headers, e.g. ``Retry-After`` on a 429; the CLI ignores them.
    headers: dict[str, str] = dataclass_field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def not_found(what: str, ident: object) -> LibraError:
    return LibraError(f"{what} {ident} not found", status=404, code="not_found")


def conflict(message: str) -> LibraError:
    return LibraError(message, status=409, code="conflict")


def unauthorized(message: str = "a valid API key is required") -> LibraError:
    return LibraError(message, status=401, code="unauthorized")


def forbidden(message: str) -> LibraError:
    return LibraError(message, status=403, code="forbidden")
