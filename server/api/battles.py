import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Body, Header, Request, status
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from arena import service
from arena.schemas import BattleIn, BattleOut, RegenerateIn, TurnIn
from evaluation.tasks.taxonomy import HARM_CATEGORIES
from server.deps import RuntimeDep
from server.limits import BattleLimit, open_streams
from server.voters import VoterDep

router = APIRouter(prefix="/battles", tags=["arena"])

# No buffering anywhere on the way (nginx reads X-Accel-Buffering), and never a cached copy.
_SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_battle(battle: BattleIn, request: Request, runtime: RuntimeDep, voter: VoterDep) -> BattleOut:
    """Two anonymous models answer the prompt; their names are revealed after the vote.

    With `"stream": true` the answer comes at once (status `generating`, no answers yet): follow
    `GET /battles/{id}/stream`. Without it, the request waits for both answers.
    """
    # The battle rate limit runs alongside the pair draw (nothing is stored if it refuses): both are
    # database round trips that stand before the visitor's first token.
    limit = BattleLimit.dependency
    return await service.start_battle(runtime.arena, battle, voter, wait=not battle.stream,
                                      admit=lambda: limit(request, voter))


@router.get("/harm-categories")
async def harm_categories() -> dict[str, str]:
    """The harm categories a vote may name (the 19 of PKU-SafeRLHF): slug to label."""
    return dict(HARM_CATEGORIES)


@router.get("/{battle_id}")
async def get_battle(battle_id: uuid.UUID, runtime: RuntimeDep) -> BattleOut:
    return await service.get(runtime.sessions, battle_id)


class _HeldStream(StreamingResponse):
    """A battle's event stream that gives its client's slot back when it ends, however it ends (done,
    the client gone, the server stopping)."""

    def __init__(self, events: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(events, media_type="text/event-stream", headers=_SSE_HEADERS)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


@router.get("/{battle_id}/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def stream_battle(battle_id: uuid.UUID, request: Request, runtime: RuntimeDep, voter: VoterDep,
                        last_event_id: Annotated[str | None, Header(max_length=64)] = None) -> StreamingResponse:
    """The latest turn's answers as Server-Sent Events, labelled only `a` and `b`: `delta`
    `{"side", "text"}`, `end` `{"side", "status": "ok"}`, `error` `{"side", "message"}`, then `done`
    `{"status": "ready"|"failed"}`. Every event has an id; send it back as `Last-Event-ID` to resume.
    A client may hold `LIBRA_ARENA_STREAMS_PER_CLIENT` streams open at once; one more gets 429."""
    release = open_streams(request).take(voter, runtime.settings)
    try:
        events = await service.stream_events(runtime.arena, battle_id, last_event_id)
    except BaseException:
        release()
        raise
    return _HeldStream(events, release)


@router.post("/{battle_id}/turns", status_code=status.HTTP_201_CREATED, dependencies=[BattleLimit])
async def add_turn(battle_id: uuid.UUID, turn: TurnIn, runtime: RuntimeDep, voter: VoterDep) -> BattleOut:
    """The next prompt of the conversation (only its creator, only before the vote, up to the turn limit);
    each side sees its own earlier answers."""
    return await service.add_turn(runtime.arena, battle_id, turn, voter, wait=not turn.stream)


@router.post("/{battle_id}/regenerate", dependencies=[BattleLimit])
async def regenerate(battle_id: uuid.UUID, runtime: RuntimeDep, voter: VoterDep,
                     options: Annotated[RegenerateIn | None, Body()] = None) -> BattleOut:
    """Both answers of the latest turn again, before the vote (only the battle's creator)."""
    stream = options.stream if options is not None else False
    return await service.regenerate(runtime.arena, battle_id, voter, wait=not stream)
