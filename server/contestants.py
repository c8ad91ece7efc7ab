"""Registering and retiring contestants: validation of the backend config, audit, status rules."""

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from inference import parse_backend_config
from server.core.audit import repository as audit
from server.core.errors import LibraError
from server.core.registry import repository as registry
from server.core.registry.models import Contestant, ContestantStatus
from server.core.registry.schemas import ContestantIn


def validated_config(config: dict) -> dict:
    """The config as the backend reads it; raises a 422 that names the offending field."""
    try:
        parsed = parse_backend_config(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("config", *first["loc"]))
        raise LibraError(f"{where}: {first['msg']}", status=422, code="invalid_config", field=where) from None
    return parsed.model_dump(mode="json")


async def register(
    session: AsyncSession, entry: ContestantIn, status: ContestantStatus, actor: str, key_id: int | None = None
) -> Contestant:
    config = validated_config(entry.config)
    contestant = await registry.add(
        session, slug=entry.slug, display_name=entry.display_name, organisation=entry.organisation,
        description=entry.description, backend_kind=config["kind"], config=config, status=status,
        submitted_by=key_id,
    )
    audit.record(session, actor, "model.registered", f"model:{entry.slug}", status=status.value)
    return contestant


async def retire(session: AsyncSession, slug: str, actor: str) -> Contestant:
    contestant = await registry.get_by_slug(session, slug)
    await registry.retire(session, contestant)
    audit.record(session, actor, "model.retired", f"model:{slug}")
    return contestant
