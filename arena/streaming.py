"""Battle turns generated apart from any HTTP connection, and their events for any number of readers.

A turn's generation runs as a task held by the per-process ``StreamHub`` (built with the runtime,
cancelled at shutdown). Its events go into a ``TurnFeed`` that buffers them all, so a reader that
comes late or reconnects with ``Last-Event-ID`` gets what it missed, then follows live. A reader whose
request reached another process follows the same feed through ``arena.relay``.

Anonymity: the events say only "a" and "b". How a backend chunks its text (characters, words,
lines) and how often it sends would tell backends apart, so text is never relayed as it arrives:
``pace`` wakes on a fixed grid of ticks from the turn's start and sends each side's text gathered
since the last tick as one frame. Both sides are framed by the same clock, whatever their backend.
"""

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from arena.models import AnswerStatus, BattleAnswer

log = logging.getLogger(__name__)

TICK_S = 0.02  # one frame per side per tick at most; under 40 ms so text still looks live
KEEP_FINISHED_S = 300.0  # finished feeds kept in memory for reconnects; later ones replay from the database
# Finished feeds are looked for at most this often: a busy process keeps thousands (five minutes of
# battles), and a scan at every launch made each battle cost more the more battles came before it.
SWEEP_EVERY_S = 5.0
PING_S = 15.0  # a comment line on an idle stream, so proxies keep the connection open


@dataclass(frozen=True)
class Event:
    id: str
    name: str  # delta, end, error, done
    data: dict[str, Any]

    def encode(self) -> bytes:
        return f"id: {self.id}\nevent: {self.name}\ndata: {json.dumps(self.data)}\n\n".encode()


def feed_key(turn: int, regenerations: int) -> str:
    """Names one generation of a battle: event ids are ``<turn>.<regenerations>.<n>``."""
    return f"{turn}.{regenerations}"


def resume_after(last_event_id: str | None, key: str) -> int:
    """How many events of generation ``key`` the reader already has (0 for another generation)."""
    if not last_event_id:
        return 0
    head, _, number = last_event_id.strip().rpartition(".")
    return int(number) if head == key and number.isdigit() else 0


class TurnFeed:
    """Every event of one generation, in order; readers follow it from any position."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.events: list[Event] = []
        self.finished = asyncio.Event()
        self.finished_at: float | None = None
        self.task: asyncio.Task[None] | None = None  # the generation filling this feed, if live here
        self._wake = asyncio.Event()

    def cancel(self) -> None:
        """Stops the generation (its clean-up marks the battle failed and sends ``done``)."""
        if self.task is not None:
            self.task.cancel()

    def emit(self, name: str, data: dict[str, Any]) -> None:
        self.events.append(Event(f"{self.key}.{len(self.events) + 1}", name, data))
        self._wake.set()
        self._wake = asyncio.Event()

    def finish(self, status: str) -> None:
        if self.finished.is_set():
            return
        self.emit("done", {"status": status})
        self.finished_at = asyncio.get_running_loop().time()
        self.finished.set()

    async def follow(self, after: int = 0, idle_s: float | None = None) -> AsyncIterator[Event | None]:
        """Events after the first ``after``, live until ``done``; None after ``idle_s`` (``PING_S``)
        without one (a ping, or the relay's heartbeat)."""
        idle_s = PING_S if idle_s is None else idle_s
        position = after
        while True:
            wake = self._wake
            while position < len(self.events):
                position += 1
                yield self.events[position - 1]
            if self.finished.is_set():
                return
            try:
                await asyncio.wait_for(wake.wait(), idle_s)
            except TimeoutError:
                yield None


@dataclass
class SideFrames:
    """One side's text not yet framed, and how it ended (set when its answer is known)."""

    side: str
    pending: list[str] = field(default_factory=list)
    answer: BattleAnswer | None = None
    ended: bool = False

    def push(self, text: str) -> None:
        self.pending.append(text)

    def flush(self, feed: TurnFeed) -> None:
        if self.pending:
            feed.emit("delta", {"side": self.side, "text": "".join(self.pending)})
            self.pending.clear()
        if self.answer is not None and not self.ended:
            self.ended = True
            if self.answer.status == AnswerStatus.ok:
                feed.emit("end", {"side": self.side, "status": "ok"})
            else:
                feed.emit("error", {"side": self.side, "message": self.answer.error})


async def pace(feed: TurnFeed, sides: list[SideFrames], tick_s: float | None = None) -> None:
    """Frames both sides on one grid of ticks until both have ended."""
    tick_s = TICK_S if tick_s is None else tick_s
    loop = asyncio.get_running_loop()
    start, ticks = loop.time(), 0
    while not all(s.ended for s in sides):
        ticks += 1
        await asyncio.sleep(max(0.0, start + ticks * tick_s - loop.time()))
        for side in sides:
            side.flush(feed)


class StreamHub:
    """The generations of this process: at most one live feed per battle (its latest turn)."""

    def __init__(self) -> None:
        self._feeds: dict[uuid.UUID, TurnFeed] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._swept_at = float("-inf")

    def feed(self, battle_id: uuid.UUID) -> TurnFeed | None:
        return self._feeds.get(battle_id)

    def launch(self, battle_id: uuid.UUID, key: str, work: Callable[[TurnFeed], Coroutine[Any, Any, None]]
               ) -> TurnFeed:
        """Runs ``work(feed)`` (which fills the feed) as a task no request owns; returns the feed."""
        if self._closed:
            raise RuntimeError("the stream hub is closed")
        self._forget_old()
        feed = self._feeds[battle_id] = TurnFeed(key)
        task = feed.task = asyncio.get_running_loop().create_task(work(feed), name=f"battle-{battle_id}-{key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return feed

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def aclose(self) -> None:
        """Shutdown: each generation is cancelled and (by its own clean-up) leaves its battle failed."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
            log.info("arena.stream.hub_closed", extra={"cancelled": len(tasks)})

    def _forget_old(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._swept_at < SWEEP_EVERY_S:
            return
        self._swept_at = now
        old = [bid for bid, f in self._feeds.items() if f.finished_at is not None and now - f.finished_at > KEEP_FINISHED_S]
        for battle_id in old:
            del self._feeds[battle_id]


def replay(key: str, answers: list[BattleAnswer], status: str, had: Sequence[Event] = ()) -> TurnFeed:
    """A finished generation rebuilt from the database (another process made it, or it is old).

    ``had``: the events of this generation a reader already has, all of them from the first, when its
    live source went away mid-turn (arena.relay). The replay then continues them: numbered after them,
    with only the text each side still lacks."""
    feed = TurnFeed(key)
    feed.events.extend(e for e in had if e.id.rpartition(".")[0] == key)
    by_side = {a.side: a for a in answers}
    for side in "ab":
        shown = [e for e in feed.events if e.data.get("side") == side]
        if any(e.name in ("end", "error") for e in shown):
            continue
        text = "".join(e.data["text"] for e in shown if e.name == "delta")
        stored = by_side.get(side)
        if stored is not None and stored.status == AnswerStatus.ok:
            rest = stored.text[len(text):] if stored.text.startswith(text) else ""  # (stored text is cleaned)
            if rest or not shown:
                feed.emit("delta", {"side": side, "text": rest})
            feed.emit("end", {"side": side, "status": "ok"})
        else:
            feed.emit("error", {"side": side, "message": stored.error if stored else "the model failed to answer"})
    feed.finish(status)
    return feed
