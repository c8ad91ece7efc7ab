"""Battle logic: draw an anonymous pair, collect both answers, take one vote, reveal the names.

A battle is written in two short transactions around the generation (never one held open while
models think): first as 'generating', then with its answers. A crash in between leaves a
'generating' row that the housekeeping job marks failed, so nothing stays half-done.
"""

import asyncio
import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from arena import health, pairing, prompts
from arena import repository as repo
from arena.identity import IDENTITY_RULES_VERSION, find_leak, rules_for
from arena.integrity import VoterIdentity
from arena.models import AnswerStatus, Battle, BattleAnswer, BattleStatus, BattleTurn
from arena.schemas import AnswerOut, BattleIn, BattleOut, RevealedModel, VoteIn
from arena.style import style_features
from core.db import transaction, utcnow
from core.errors import LibraError
from core.registry import repository as registry
from core.registry.models import Contestant
from core.secrets import backend_config
from core.settings import Settings
from inference import BackendPool, InferenceError, Message, SamplingParams, parse_backend_config
from inference.priority import interactive

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BattleLimits:
    max_prompt_chars: int
    max_tokens: int
    timeout_s: float


# Shown to visitors: short and fixed, never the backend's own message (it may name hosts or files).
_SHORT_ERRORS = {
    "timeout": "the model took too long to answer",
    "rate_limited": "the model is busy; try again later",
    "context_length_exceeded": "the prompt is too long for this model",
    "backend_unavailable": "the model is unavailable right now",
    "model_file_missing": "the model's files are not installed",
    "request_rejected": "the model's endpoint refused the request",
    "incomplete_generation": "the model stopped before finishing its answer",
}


async def _answer(
    pool: BackendPool, model: Contestant, prompt: str, limits: BattleLimits, settings: Settings | None
) -> BattleAnswer:
    params = SamplingParams(max_tokens=limits.max_tokens)
    try:
        # Building the backend is inside the try: a missing key or an unloadable engine fails this side only.
        backend = pool.get(parse_backend_config(backend_config(model, settings)))  # with its decrypted key
        result = await asyncio.wait_for(backend.generate([Message("user", prompt)], params), limits.timeout_s)
    except (InferenceError, TimeoutError, ValidationError) as exc:
        log.warning("arena.answer.failed", extra={"model": model.slug, "error": type(exc).__name__})
        return BattleAnswer(status=AnswerStatus.error, text="", error=_describe(exc))
    except Exception:  # a backend bug fails its side of the battle, never the request
        log.exception("arena.answer.crashed", extra={"model": model.slug})
        return BattleAnswer(status=AnswerStatus.error, text="", error="the model failed to answer")
    text = storable(result.text)
    status = AnswerStatus.ok if text.strip() else AnswerStatus.error
    style = style_features(text)
    leak = find_leak(text, rules_for(model.slug, model.display_name, model.organisation))
    return BattleAnswer(
        identity_match=leak.matched if leak else None,
        style_length=style.length, style_headers=style.headers, style_lists=style.lists, style_bold=style.bold,
        status=status,
        text=text,
        error=None if status == AnswerStatus.ok else "the model returned an empty answer",
        finish_reason=result.finish_reason,
        completion_tokens=result.completion_tokens,
        latency_s=result.latency_s,
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return _SHORT_ERRORS["timeout"]
    if isinstance(exc, ValidationError):
        return "the model's configuration is not valid"
    return _SHORT_ERRORS.get(getattr(exc, "code", ""), "the model failed to answer")


def storable(text: str) -> str:
    """A model's text as Postgres can store it: no NUL, no lone surrogate (not encodable as UTF-8)."""
    return text.replace("\x00", "").encode("utf-8", "ignore").decode("utf-8")


async def start_battle(
    sessions: async_sessionmaker[AsyncSession], pool: BackendPool, request: BattleIn, limits: BattleLimits,
    settings: Settings | None = None, voter: VoterIdentity | None = None,
) -> BattleOut:
    if request.prompt is not None and len(request.prompt) > limits.max_prompt_chars:
        raise LibraError(
            f"the prompt has {len(request.prompt)} characters; the limit is {limits.max_prompt_chars}",
            status=413, code="prompt_too_long", field="prompt",
        )
    seed = secrets.randbits(31)
    rng = np.random.default_rng(seed)
    prompt = prompts.resolve(request, rng)
    async with transaction(sessions) as session:
        pair = await pairing.draw(session, rng, settings)
        battle = Battle(id=uuid.uuid4(), prompt=prompt.text, status=BattleStatus.generating, model_a_id=pair.model_a.id,
                        model_b_id=pair.model_b.id, sampling_seed=seed, prompt_source=prompt.source,
                        attack=prompt.attack, pool_item=prompt.pool_item, pairing=pair.record,
                        creator_hash=voter.session_hash if voter else None,
                        address_hash=voter.address_hash if voter else None)
        session.add(battle)
        session.add(BattleTurn(battle_id=battle.id, turn=1, prompt=prompt.text))
    try:
        with interactive():  # a shared embedded engine serves the arena before queued evaluation work
            answers = await asyncio.gather(
                _answer(pool, pair.model_a, prompt.text, limits, settings),
                _answer(pool, pair.model_b, prompt.text, limits, settings),
            )
    except BaseException:  # cancelled (the client left, shutdown): the battle ends failed, not 'generating'
        await asyncio.shield(_fail(sessions, battle.id))
        raise
    return await _store_answers(sessions, battle.id, answers, settings)


async def _fail(sessions: async_sessionmaker[AsyncSession], battle_id: uuid.UUID) -> None:
    async with transaction(sessions) as session:
        await repo.fail_battle(session, battle_id)


async def _store_answers(
    sessions: async_sessionmaker[AsyncSession], battle_id: uuid.UUID, answers: Sequence[BattleAnswer],
    settings: Settings | None = None,
) -> BattleOut:
    async with transaction(sessions) as session:
        battle = await repo.get_battle(session, battle_id, lock=True)
        for side, answer, model_id in zip("ab", answers, (battle.model_a_id, battle.model_b_id), strict=True):
            answer.battle_id, answer.side, answer.turn = battle.id, side, 1
            session.add(answer)
            await health.record_answer(session, model_id, answer.status == AnswerStatus.ok, answer.error, settings)
        all_ok = all(a.status == AnswerStatus.ok for a in answers)
        leaked = [a.side for a in answers if a.identity_match]
        battle.identity_leak, battle.identity_rules_version = bool(leaked), IDENTITY_RULES_VERSION
        if leaked:
            log.info("arena.identity.leak", extra={"battle": str(battle.id), "sides": leaked})
        battle.status = BattleStatus.ready if all_ok else BattleStatus.failed
        battle.finished_at = utcnow() if not all_ok else None
        battle.answered_at = utcnow() if all_ok else None
        log.info("arena.battle.created", extra={"battle": str(battle.id), "status": battle.status.value})
        return await view(session, battle)


async def get(sessions: async_sessionmaker[AsyncSession], battle_id: uuid.UUID) -> BattleOut:
    async with transaction(sessions) as session:
        return await view(session, await repo.get_battle(session, battle_id))


async def view(session: AsyncSession, battle: Battle) -> BattleOut:
    answers = [AnswerOut(side=a.side, status=a.status, text=a.text, error=a.error)
               for a in await repo.answers_of(session, battle.id)]
    out = BattleOut(id=battle.id, prompt=battle.prompt, status=battle.status,
                    created_at=battle.created_at, answers=answers)
    if battle.status == BattleStatus.voted:
        vote = await repo.vote_of(session, battle.id)
        models = await registry.get_many(session, [battle.model_a_id, battle.model_b_id])
        out.model_a, out.model_b = (_reveal(models[battle.model_a_id]), _reveal(models[battle.model_b_id]))
        if vote is not None:
            out.vote = VoteIn(helpfulness=vote.helpfulness, safety=vote.safety, harm_category=vote.harm_category,
                              reason=vote.reason, reason_public=vote.reason_public)
            out.vote_counted, out.vote_excluded_reason = vote.excluded_reason is None, vote.excluded_reason
    return out


def _reveal(model: Contestant) -> RevealedModel:
    return RevealedModel(slug=model.slug, display_name=model.display_name, organisation=model.organisation)
