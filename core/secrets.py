"""Endpoint API keys at rest: Fernet (AES-128-CBC + HMAC-SHA256) with the service's secret key.

The key is `LIBRA_SECRET_KEY`; when that is unset (the embedded setup) one is generated once into
`LIBRA_HOME/secret.key`, readable by its owner only. Every process that builds backends (`libra serve`,
`libra worker`) must see the same key: losing it makes stored endpoint keys unreadable, and the owners
then register them again.
"""

import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from core.errors import LibraError
from core.registry.models import Contestant
from core.settings import Settings

KEY_FILE = "secret.key"


def encrypt(settings: Settings, plaintext: str) -> str:
    """Ciphertext of an endpoint key, as text for a database column; generates the key file if needed."""
    return _fernet(settings, create=True).encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(settings: Settings, token: str) -> str:
    try:
        return _fernet(settings, create=False).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise _secret_error("a stored endpoint key does not match LIBRA_SECRET_KEY (was the key changed?)") from None


def backend_config(model: Contestant, settings: Settings | None = None) -> dict[str, Any]:
    """The config a backend is built from: the stored one plus the decrypted API key, if any.

    Hand it straight to the backend pool; never store, log or return it.
    """
    if not model.api_key_encrypted:
        return dict(model.config)
    return {**model.config, "api_key": decrypt(settings or Settings(), model.api_key_encrypted)}


def _fernet(settings: Settings, *, create: bool) -> Fernet:
    if settings.secret_key is not None:
        return _checked(settings.secret_key.get_secret_value(), "LIBRA_SECRET_KEY")
    path = Path(settings.home) / KEY_FILE
    if path.exists():
        return _checked(path.read_text(encoding="ascii").strip(), str(path))
    if not create:
        raise _secret_error(f"no secret key: set LIBRA_SECRET_KEY or restore {path}")
    return _checked(_write_new_key(path), str(path))


def _write_new_key(path: Path) -> str:
    key = Fernet.generate_key().decode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # O_EXCL: two processes starting at once must not write two different keys
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(key + "\n")
    return key


def _checked(key: str, source: str) -> Fernet:
    try:
        return Fernet(key)
    except ValueError:
        raise _secret_error(f"{source} is not a Fernet key (32 url-safe base64-encoded bytes)") from None


def _secret_error(message: str) -> LibraError:
    return LibraError(message, status=500, code="secret_key")


def home_secret(settings: Settings, name: str) -> bytes:
    """A random secret generated once into LIBRA_HOME/<name> (owner-readable only) and shared by the
    processes that share that folder; with several hosts, set the matching setting instead."""
    path = Path(settings.home) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{name}.{os.getpid()}")
        draft.write_text(secrets.token_urlsafe(32))
        draft.chmod(0o600)
        try:
            os.link(draft, path)  # atomic: of two processes starting at once, one secret wins
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip().encode()
