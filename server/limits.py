"""Per-client rate limits and per-key quotas, counted in Postgres so that they hold across processes.

A client is told apart twice: by its anonymous session cookie (set by ``server.middleware.SessionCookie``)
and by its address. Each action counts in both buckets; the address may do ``rate_address_factor``
times a client's limit, since many people can share one address. A client that drops its cookie
gets a new one each time, and then only the address limit holds it.
"""

import ipaddress
from collections.abc import Callable
from functools import cache

from fastapi import Depends, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import autocommit
from core.errors import LibraError
from core.keys import repository as counters
from core.keys.models import ApiKey, KeyScope
from core.registry.models import Contestant
from core.settings import Settings
from evaluation.models import EvalRun, RunStatus

DAY_S = 86_400
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def rate_limited(message: str, retry_after_s: int) -> LibraError:
    return LibraError(message, status=429, code="rate_limited", headers={"Retry-After": str(retry_after_s)})


@cache
def _networks(trusted: str) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in trusted.split(",") if part.strip())


def _trusted(address: str, networks: tuple[IpNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request: Request, trusted_proxies: str) -> str:
    """The peer's address; behind a trusted proxy, the nearest X-Forwarded-For hop that is not one."""
    peer = request.client.host if request.client else "unknown"
    networks = _networks(trusted_proxies)
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


def client_session(request: Request) -> str:
    return request.state.client_session  # always set by the SessionCookie middleware


def _rate_limit(action: str, limit_of: Callable[[Settings], int]) -> Callable:
    async def check(request: Request) -> None:
        runtime = request.app.state.runtime
        settings = runtime.settings
        limit = limit_of(settings)
        if limit == 0:  # 0 turns the limit off
            return
        buckets = [(f"{action}:session:{client_session(request)}", limit),
                   (f"{action}:addr:{client_address(request, settings.trusted_proxies)}",
                    limit * settings.rate_address_factor)]
        # One autocommit statement, before the action: a hit counts even when the action then fails, and
        # an address's counter row is locked for that statement alone.
        async with autocommit(runtime.sessions) as session:
            hits = await counters.hit_many(session, [bucket for bucket, _ in buckets], settings.rate_window_s)
            if hits[0].count == 1:  # a client's new window: now and then, drop counters of clients long gone
                await counters.purge_counters(session, older_than_s=2 * DAY_S)
        for (_, most), hit in zip(buckets, hits, strict=True):
            if hit.count > most:
                raise rate_limited(f"too many {action} from this client; try again in {hit.retry_after_s} s",
                                   hit.retry_after_s)

    return check


BattleLimit = Depends(_rate_limit("battles", lambda s: s.rate_battles))
# Votes count the same way in arena.votes, with the same window and the same factor.


async def _evals_in_flight(session: AsyncSession, key_id: int) -> int:
    query = (select(func.count()).select_from(EvalRun).join(Contestant, Contestant.id == EvalRun.model_id)
             .where(Contestant.submitted_by == key_id,
                    EvalRun.status.in_([RunStatus.queued, RunStatus.running])))
    return await session.scalar(query) or 0


async def check_submission_quota(session: AsyncSession, settings: Settings, key: ApiKey) -> None:
    """Models per UTC day and evaluations in flight, per key; admin keys have no quota.

    Counted in the request's transaction, so a submission that fails (bad config, taken slug) gives
    its quota back, and the counter's row lock makes one key's concurrent submissions take turns.
    """
    if key.scope is KeyScope.admin:
        return
    in_flight = await _evals_in_flight(session, key.id)
    if in_flight >= settings.quota_evals_in_flight:
        raise rate_limited(f"this key already has {in_flight} evaluations queued or running; "
                           "submit again when one has finished", 60)
    hit = await counters.hit(session, f"models:key:{key.id}", DAY_S)
    if hit.count > settings.quota_models_per_day:
        raise rate_limited(f"this key may submit {settings.quota_models_per_day} models per day",
                           hit.retry_after_s)
