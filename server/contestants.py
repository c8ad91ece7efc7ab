"""Registering and retiring contestants: validation of the backend config, audit, status rules."""

import logging

import procrastinate
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import secrets
from core.audit import repository as audit
from core.db import transaction
from core.errors import LibraError, conflict
from core.keys.models import ApiKey, KeyScope
from core.registry import repository as registry
from core.registry.models import Contestant, ContestantStatus
from core.registry.schemas import ContestantIn, ContestantUpdate
from core.settings import Settings
from evaluation import repository as eval_repo
from evaluation.jobs import queue_evaluation
from evaluation.models import RunReason
from inference import parse_backend_config
from inference.config import BACKEND_KINDS, BackendConfig
from inference.egress import check_host_literal, parse_networks

log = logging.getLogger(__name__)


# What only admin keys and the CLI may configure: they name the server's own secrets and hardware.
_ADMIN_ONLY_FIELDS = ("api_key_env", "api_key_file")


def validated_config(config: dict, *, submitter: bool = False, settings: Settings | None = None) -> dict:
    """The config as the backend reads it, without any key value; raises a 422 that names the offending
    field, or a 403 when a submitter asks for what only admins may configure (docs/security.md)."""
    if submitter:
        _check_submitter_fields(config)
    try:
        parsed = parse_backend_config(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("config", *first["loc"]))
        raise LibraError(f"{where}: {first['msg']}", status=422, code="invalid_config", field=where) from None
    if submitter:
        _check_submitted_url(parsed, settings or Settings())
        parsed = parsed.model_copy(update={"egress": "public"})
    return parsed.model_dump(mode="json")


def _check_submitter_fields(config: dict) -> None:
    kind = config.get("kind")
    if kind in BACKEND_KINDS and kind != "openai":
        raise _forbidden("config.kind", f"a submitter key may register only 'openai' endpoints, not {kind!r}")
    for name in _ADMIN_ONLY_FIELDS:
        if config.get(name) is not None:
            raise _forbidden(f"config.{name}", f"config.{name} needs an admin key; give the key as config.api_key")
    if config.get("egress", "public") != "public":
        raise _forbidden("config.egress", "submitted endpoints are always limited to public addresses")


def _check_submitted_url(config: BackendConfig, settings: Settings) -> None:
    url = config.base_url  # type: ignore[union-attr]  # only openai configs get here
    schemes = ("https", "http") if settings.allow_http_endpoints else ("https",)
    problem = None
    if url.scheme not in schemes:
        problem = "must use https" if url.scheme == "http" else f"scheme {url.scheme!r} is not allowed"
    elif url.username or url.password:
        problem = "must not hold credentials; give the key as config.api_key"
    elif url.query or url.fragment:
        problem = "must not have a query or a fragment"
    elif reason := check_host_literal(url.host or "", parse_networks(settings.egress_allow)):
        problem = f"is refused by the egress policy: {reason}"
    if problem:
        raise LibraError(f"config.base_url {problem}", status=422, code="invalid_config", field="config.base_url")


def _forbidden(field: str, message: str) -> LibraError:
    return LibraError(message, status=403, code="forbidden", field=field)


async def register(
    session: AsyncSession, entry: ContestantIn, status: ContestantStatus, actor: str, key_id: int | None = None,
    *, submitter: bool = False, settings: Settings | None = None,
) -> Contestant:
    """`submitter`: registered with a submitter key, so limited to public HTTPS endpoints (else admin/CLI)."""
    config = validated_config(entry.config, submitter=submitter, settings=settings)
    key_value = entry.config.get("api_key") if config["kind"] == "openai" else None
    contestant = await registry.add(
        session, slug=entry.slug, display_name=entry.display_name, organisation=entry.organisation,
        description=entry.description, backend_kind=config["kind"], config=config, status=status,
        submitted_by=key_id,
        api_key_encrypted=secrets.encrypt(settings or Settings(), str(key_value).strip()) if key_value else None,
    )
    audit.record(session, actor, "model.registered", f"model:{entry.slug}", status=status.value)
    return contestant


async def submit(
    sessions: async_sessionmaker[AsyncSession],
    jobs: procrastinate.App,
    settings: Settings,
    entry: ContestantIn,
    key_id: int,
    *,
    admin: bool = False,
) -> Contestant:
    """A submitted model is committed as pending, then its first evaluation is queued."""
    actor = f"key:{key_id}"
    async with transaction(sessions) as session:
        contestant = await register(session, entry, ContestantStatus.pending, actor, key_id,
                                    submitter=not admin, settings=settings)
    await _queue_first(sessions, jobs, settings, contestant, actor)
    return contestant


async def approve(session: AsyncSession, slug: str, actor: str) -> Contestant:
    """An admin lets an evaluated submission into the arena and onto the leaderboard."""
    contestant = await registry.get_by_slug(session, slug)
    if contestant.status != ContestantStatus.evaluated:
        raise conflict(f"model {slug!r} is {contestant.status.value}; only an evaluated model can be approved")
    contestant.status = ContestantStatus.active
    audit.record(session, actor, "model.approved", f"model:{slug}")
    return contestant


async def owned(session: AsyncSession, slug: str, key: ApiKey) -> Contestant:
    """The model, if `key` submitted it (or is an admin key); 403 otherwise."""
    contestant = await registry.get_by_slug(session, slug)
    if key.scope != KeyScope.admin and contestant.submitted_by != key.id:
        raise LibraError(f"model {slug!r} was not submitted with this key", status=403, code="forbidden")
    return contestant


async def withdraw(session: AsyncSession, slug: str, key: ApiKey) -> Contestant:
    contestant = await owned(session, slug, key)
    await registry.retire(session, contestant)
    audit.record(session, f"key:{key.id}", "model.withdrawn", f"model:{slug}")
    return contestant


async def update(
    sessions: async_sessionmaker[AsyncSession], jobs: procrastinate.App, settings: Settings,
    slug: str, entry: ContestantUpdate, key: ApiKey,
) -> Contestant:
    """The owner changes its endpoint or shown fields: validated as at registration, then the model is
    `pending` again (out of the arena until evaluated and approved anew) and a new evaluation is queued."""
    actor = f"key:{key.id}"
    async with transaction(sessions) as session:
        contestant = await owned(session, slug, key)
        if contestant.status in (ContestantStatus.retired, ContestantStatus.evaluating):
            raise conflict(f"model {slug!r} is {contestant.status.value} and cannot be changed now")
        _apply_update(contestant, entry, settings, submitter=key.scope != KeyScope.admin)
        # A run on the old endpoint would otherwise finish and mark the new one evaluated (the raise
        # rolls the update back).
        if entry.config is not None and await eval_repo.has_unfinished_run(session, contestant.id):
            raise conflict(f"an evaluation of {slug!r} is queued or running; wait for it, or withdraw the model")
        audit.record(session, actor, "model.updated", f"model:{slug}", config=entry.config is not None)
    await _queue_first(sessions, jobs, settings, contestant, actor)
    return contestant


def _apply_update(contestant: Contestant, entry: ContestantUpdate, settings: Settings, *, submitter: bool) -> None:
    for name in ("display_name", "organisation", "description"):
        if (value := getattr(entry, name)) is not None:
            setattr(contestant, name, value)
    if entry.config is not None:
        config = validated_config(entry.config, submitter=submitter, settings=settings)
        key_value = entry.config.get("api_key") if config["kind"] == "openai" else None
        contestant.backend_kind, contestant.config = config["kind"], config
        contestant.api_key_encrypted = secrets.encrypt(settings, str(key_value).strip()) if key_value else None
    contestant.status = ContestantStatus.pending


async def _queue_first(
    sessions: async_sessionmaker[AsyncSession], jobs: procrastinate.App, settings: Settings,
    contestant: Contestant, actor: str,
) -> None:
    try:
        await queue_evaluation(sessions, jobs, settings, contestant.slug, None, RunReason.submission, actor)
    except Exception:  # the submission stands; the periodic re-evaluation also picks up pending models
        log.exception("evaluation.queue.failed", extra={"model": contestant.slug})


async def retire(session: AsyncSession, slug: str, actor: str) -> Contestant:
    contestant = await registry.get_by_slug(session, slug)
    await registry.retire(session, contestant)
    audit.record(session, actor, "model.retired", f"model:{slug}")
    return contestant
