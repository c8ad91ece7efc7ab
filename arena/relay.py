"""A battle's live events for readers in other processes, over Postgres LISTEN/NOTIFY.

Why: with several API processes (``libra serve --workers N``, or replicas on several hosts) the request
that starts a battle and the one that streams it often reach different processes, and only the first
holds the live ``TurnFeed``. Every process already reaches the same Postgres, so NOTIFY relays the
events with no new infrastructure, across hosts too. Without it a reader elsewhere sees nothing until
the turn is stored.

The protocol, on one channel; a payload starts with its kind:

- ``want <battle> <key> <n>``: a reader's process asks for generation ``key`` of a battle after event n.
- The process whose hub holds that feed (the owner) answers ``here <battle> <key>`` at once, then sends
  the events after n (``events``, a JSON list of ``[battle, id, name, data]``), live until ``done``, and
  ``here`` again whenever the feed is idle for ``HEARTBEAT_S``. Nothing is published for a battle nobody
  asked for.
- A NOTIFY is a commit, so a process sends what gathered meanwhile (every battle's events) in as few
  payloads as fit and all of them in one transaction. Postgres refuses payloads of 8000 bytes or more:
  one event larger than ``MAX_PAYLOAD`` goes as numbered ``part`` payloads that the listener joins
  (each names its message: Postgres delivers one copy of equal payloads sent in one transaction).
- Events are numbered, so a reader keeps only the next one it lacks: a second reader's backlog and the
  live events interleave harmlessly, and a gap (payloads lost to a reconnect) makes it ask again.

Fallbacks, so that a reader never waits on a relay that cannot deliver: no answer within ``ANSWER_S``
(the owner died, or forgot a finished turn), or this process's listener is down: ``open`` returns None
and the caller polls the database and replays, as without a relay. An owner silent for ``SILENCE_S``
mid-stream is asked again; if it stays silent the remote feed ends unfinished and the caller falls back
the same way.

Anonymity: what travels are the paced frames of ``arena.streaming`` ("a" and "b" only) and battle ids;
nothing names a model or a process.

Each process holds one LISTEN connection (reconnected with a growing pause after a database restart)
and one connection to send on, opened at the first send: psycopg cannot run a statement on a connection
while it waits for notifications.
"""

import asyncio
import itertools
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

import psycopg

from arena import streaming
from arena.streaming import Event, StreamHub, TurnFeed

log = logging.getLogger(__name__)

CHANNEL = "libra_arena_relay"
MAX_PAYLOAD = 7800  # bytes; Postgres' limit is 8000 (payloads are ASCII: json.dumps escapes the rest)
ANSWER_S = 1.0  # how long a reader waits for an owner to answer before it falls back to the database
HEARTBEAT_S = 1.0  # an owner's "still here" while its feed is idle
SILENCE_S = 3.0  # a reader asks again after this long without a word from the owner, then gives up
FIRST_PAUSE_S, LONGEST_PAUSE_S = 0.1, 5.0  # reconnection pauses, doubling in between
LOG_EVERY_S = 60.0  # one log line per failure kind per interval
APPLICATION_NAME = "libra-arena-relay"


def _number(event_id: str) -> tuple[str, int]:
    key, _, number = event_id.rpartition(".")
    return key, int(number)


class RemoteFeed:
    """One reader's copy of a feed that another process generates, from the reader's position on."""

    def __init__(self, relay: "Relay", battle_id: uuid.UUID, key: str, after: int, give_up_s: float) -> None:
        self.relay, self.battle_id, self.key = relay, battle_id, key
        self.position = after  # events the reader has: its Last-Event-ID, then each one relayed
        self.events: list[Event] = []
        self.heard = asyncio.Event()
        self.complete = False  # ``done`` arrived
        loop = asyncio.get_running_loop()
        self._heard_at = self._asked_at = loop.time()
        self._give_up_at = loop.time() + give_up_s
        self._wake = asyncio.Event()

    @property
    def last_event_id(self) -> str | None:
        return f"{self.key}.{self.position}" if self.position else None

    def ask(self) -> None:
        self._asked_at = asyncio.get_running_loop().time()
        self.relay.send(_Want(self.battle_id, self.key, self.position))

    def hear(self, key: str) -> None:
        """The owner is there (its answer to ``want``, or its heartbeat)."""
        if key == self.key:
            self.heard.set()
            self._heard_at = asyncio.get_running_loop().time()

    def take(self, events: Iterable[Event]) -> None:
        """Relayed events, kept in order; a gap asks again from the position held."""
        gap = False
        for event in events:
            key, number = _number(event.id)
            if key != self.key:
                continue
            self.hear(key)
            if number <= self.position or self.complete:
                continue
            if number > self.position + 1:
                gap = True
                continue
            self.position += 1
            self.events.append(event)
            self.complete = event.name == "done"
            self._wake.set()
        if gap and self._heard_at - self._asked_at > ANSWER_S:  # not while an answer is on its way
            self.ask()

    async def follow(self) -> AsyncIterator[Event | None]:
        """Like ``TurnFeed.follow`` (None for a ping after ``PING_S`` idle); ends at ``done``, or
        unfinished when the owner stays silent or the time limit passes."""
        loop = asyncio.get_running_loop()
        shown, idle_since = 0, loop.time()
        while True:
            while shown < len(self.events):
                shown += 1
                idle_since = loop.time()
                yield self.events[shown - 1]
            now = loop.time()
            if self.complete or now > self._give_up_at or now - self._heard_at > SILENCE_S + ANSWER_S:
                return
            if now - self._heard_at > SILENCE_S and self._asked_at < self._heard_at + SILENCE_S:
                self.ask()  # once per silence: a lost payload, or an owner gone
            if now - idle_since >= streaming.PING_S:
                idle_since = now
                yield None
            self._wake.clear()
            wait = min(HEARTBEAT_S, max(0.0, idle_since + streaming.PING_S - now))
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    def close(self) -> None:
        self.relay.forget(self)


@dataclass(frozen=True)
class _Want:
    battle_id: uuid.UUID
    key: str
    after: int

    def payload(self) -> str:
        return f"want {self.battle_id} {self.key} {self.after}"


@dataclass(frozen=True)
class _Here:
    battle_id: uuid.UUID
    key: str

    def payload(self) -> str:
        return f"here {self.battle_id} {self.key}"


@dataclass(frozen=True)
class _Relayed:
    battle_id: uuid.UUID
    event: Event


Outgoing = _Want | _Here | _Relayed


def payloads(items: Iterable[Outgoing], limit: int = MAX_PAYLOAD) -> Iterator[str]:
    """The items as NOTIFY payloads of at most ``limit`` bytes, in order; consecutive events (of any
    battles) share payloads, and one event too large for a payload goes in parts."""
    numbers = itertools.count(1)  # parts of different events may be equal; Postgres would drop the copy
    events: list[str] = []
    size = len("events []")
    for item in items:
        if isinstance(item, _Relayed):
            event = item.event
            encoded = json.dumps([str(item.battle_id), event.id, event.name, event.data])
            if events and size + len(encoded) > limit:
                yield from _split(_events(events), limit, numbers)
                events, size = [], len("events []")
            events.append(encoded)
            size += len(encoded) + 1
            continue
        if events:
            yield from _split(_events(events), limit, numbers)
            events, size = [], len("events []")
        yield item.payload()
    if events:
        yield from _split(_events(events), limit, numbers)


def _events(encoded: list[str]) -> str:
    return "events [" + ",".join(encoded) + "]"


def _split(payload: str, limit: int, numbers: Iterator[int]) -> Iterator[str]:
    """``part <message> <i> <count> <text>``: Postgres delivers one copy of equal payloads sent in one
    transaction, and the parts of two long answers can be equal, so each names its message."""
    if len(payload) <= limit:
        yield payload
        return
    message = next(numbers)
    room = limit - len(f"part {message} 99999 99999 ")
    count = -(-len(payload) // room)
    for part in range(count):
        yield f"part {message} {part + 1} {count} {payload[part * room:(part + 1) * room]}"


class Relay:
    """This process's end of the relay: answers ``want``s for the feeds its hub holds, and follows
    other processes' feeds for its readers."""

    def __init__(self, url: str, hub: StreamHub) -> None:
        self.url, self.hub = url, hub
        self.listening = asyncio.Event()  # set while the LISTEN connection is up
        self._readers: dict[uuid.UUID, set[RemoteFeed]] = defaultdict(set)
        self._serving: dict[uuid.UUID, _Serving] = {}
        self._parts: dict[int, tuple[str, list[str]]] = {}  # by the sending connection's backend pid
        self._outbox: asyncio.Queue[Outgoing] = asyncio.Queue()
        self._sender: psycopg.AsyncConnection | None = None
        self._connect_tried_at = float("-inf")
        self._logged: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # Life cycle

    async def start(self, wait_s: float = 2.0) -> None:
        """Starts listening; waits a little for the first connection, never fails (readers fall back)."""
        self._tasks = [asyncio.create_task(self._listen(), name="arena-relay-listen"),
                       asyncio.create_task(self._send_all(), name="arena-relay-send")]
        try:
            await asyncio.wait_for(self.listening.wait(), wait_s)
        except TimeoutError:
            pass

    async def aclose(self, flush_s: float = 1.0) -> None:
        """Sends what the owner still has to say (the ``done`` of feeds the hub just cancelled), then stops."""
        if self._closed:
            return
        serving = [s.task for s in self._serving.values()]
        if serving:
            await asyncio.wait(serving, timeout=flush_s)
        try:
            await asyncio.wait_for(self._outbox.join(), flush_s)
        except TimeoutError:
            pass
        self._closed = True
        for task in [*self._tasks, *(s.task for s in self._serving.values())]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sender is not None:
            await self._sender.close()

    # Reader side

    async def open(self, battle_id: uuid.UUID, key: str, after: int, give_up_s: float) -> RemoteFeed | None:
        """The live feed ``key`` of a battle that another process generates, from event ``after``;
        None if no owner answers in time (the caller falls back to the database)."""
        if not self.listening.is_set():
            return None
        remote = RemoteFeed(self, battle_id, key, after, give_up_s)
        self._readers[battle_id].add(remote)
        # Asked twice: an owner that had just committed the turn may not have started its feed at the first.
        for _ in range(2):
            remote.ask()
            try:
                await asyncio.wait_for(remote.heard.wait(), ANSWER_S / 2)
                return remote
            except TimeoutError:
                pass
        self.forget(remote)
        return None

    @property
    def following(self) -> int:
        """How many readers of this process follow another process's feed now."""
        return sum(len(readers) for readers in self._readers.values())

    def forget(self, remote: RemoteFeed) -> None:
        readers = self._readers.get(remote.battle_id)
        if readers is not None:
            readers.discard(remote)
            if not readers:
                del self._readers[remote.battle_id]

    # Owner side

    def _answer(self, battle_id: uuid.UUID, key: str, after: int) -> None:
        feed = self.hub.feed(battle_id)
        if feed is None or feed.key != key:
            return  # not ours (or another generation now): another process may answer
        self.send(_Here(battle_id, key))
        serving = self._serving.get(battle_id)
        if serving is not None and serving.feed is feed and not serving.task.done():
            for event in feed.events[after:serving.position]:  # live events after these are on their way
                self.send(_Relayed(battle_id, event))
            return
        serving = _Serving(feed, after)
        serving.task = asyncio.create_task(self._serve(battle_id, serving), name=f"arena-relay-{battle_id}")
        self._serving[battle_id] = serving

    async def _serve(self, battle_id: uuid.UUID, serving: "_Serving") -> None:
        try:
            async for event in serving.feed.follow(serving.position, idle_s=HEARTBEAT_S):
                if event is None:
                    self.send(_Here(battle_id, serving.feed.key))
                else:
                    serving.position += 1
                    self.send(_Relayed(battle_id, event))
        finally:
            if self._serving.get(battle_id) is serving:
                del self._serving[battle_id]

    # The wire

    def send(self, item: Outgoing) -> None:
        if not self._closed:
            self._outbox.put_nowait(item)

    async def _send_all(self) -> None:
        while True:
            items = [await self._outbox.get()]
            while not self._outbox.empty():
                items.append(self._outbox.get_nowait())
            try:
                await self._notify_retrying(list(payloads(items)))
            finally:
                for _ in items:
                    self._outbox.task_done()

    async def _notify_retrying(self, messages: list[str]) -> None:
        """Once more on a new connection: the one we had may have died with a database restart, unnoticed
        until used (a failed transaction sent nothing, so nothing goes twice)."""
        for attempt in (1, 2):
            try:
                await self._notify(messages)
                return
            except Exception as error:  # noqa: BLE001  (readers see a gap or silence and ask again)
                await self._drop_sender()
                if attempt == 2:
                    self._log_down("send", error)

    async def _notify(self, messages: list[str]) -> None:
        loop = asyncio.get_running_loop()
        if self._sender is None or self._sender.closed:
            if loop.time() - self._connect_tried_at < FIRST_PAUSE_S:
                return  # just failed to connect: drop rather than hammer an absent database
            self._connect_tried_at = loop.time()
            self._sender = await _connect(self.url)
        sender = self._sender
        async with sender.transaction(), sender.pipeline():  # one commit and one round trip for them all
            for message in messages:
                await sender.execute("SELECT pg_notify(%s, %s)", (CHANNEL, message))

    async def _drop_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            await sender.close()

    async def _listen(self) -> None:
        pause = FIRST_PAUSE_S
        while True:
            try:
                async with await _connect(self.url) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self._connected()
                    pause = FIRST_PAUSE_S
                    async for notify in connection.notifies():
                        self._receive(notify.payload, notify.pid)
            except Exception as error:  # noqa: BLE001  (a restart, or a bug: listen again either way)
                self._log_down("listen", error)
            finally:
                self.listening.clear()
            await asyncio.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE_S)

    def _connected(self) -> None:
        self.listening.set()
        self._parts.clear()  # their other parts went while we were away
        log.info("arena.relay.listening")
        for readers in self._readers.values():  # what was sent while we were away is lost: ask again
            for remote in readers:
                remote.ask()

    def _receive(self, payload: str, sender_pid: int) -> None:
        try:
            kind, body = payload.split(" ", 1)
            if kind == "want":
                battle, key, after = body.split(" ")
                self._answer(uuid.UUID(battle), key, max(0, int(after)))
            elif kind == "here":
                battle, key = body.split(" ")
                for remote in list(self._readers.get(uuid.UUID(battle), ())):
                    remote.hear(key)
            elif kind == "events":
                self._deliver(body)
            elif kind == "part":
                self._join(sender_pid, body)
        except (ValueError, KeyError, TypeError):  # not ours to understand: never fail the listener
            log.warning("arena.relay.bad_payload", extra={"start": payload[:60]})

    def _deliver(self, body: str) -> None:
        if not self._readers:  # most payloads, most of the time: nobody here reads remotely
            return
        by_battle: dict[uuid.UUID, list[Event]] = defaultdict(list)
        for battle, event_id, name, data in json.loads(body):
            by_battle[uuid.UUID(battle)].append(Event(event_id, name, data))
        for battle_id, events in by_battle.items():
            for remote in list(self._readers.get(battle_id, ())):
                remote.take(events)

    def _join(self, sender_pid: int, body: str) -> None:
        message, number, count, chunk = body.split(" ", 3)
        held, parts = self._parts.get(sender_pid, (message, []))
        if held != message or int(number) != len(parts) + 1:  # one was lost: the reader sees a gap, asks again
            parts = []
            if int(number) != 1:
                self._parts.pop(sender_pid, None)
                return
        parts.append(chunk)
        self._parts[sender_pid] = (message, parts)
        if len(parts) == int(count):
            del self._parts[sender_pid]
            self._receive("".join(parts), sender_pid)

    def _log_down(self, side: str, error: BaseException) -> None:
        kind = f"{side}:{type(error).__name__}"
        now = asyncio.get_running_loop().time()
        if now - self._logged.get(kind, float("-inf")) >= LOG_EVERY_S:
            self._logged[kind] = now
            log.warning("arena.relay.down", extra={"side": side, "error": type(error).__name__,
                                                   "detail": str(error).splitlines()[0] if str(error) else ""})


class _Serving:
    """An owner's publication of one feed: ``position`` events are sent or queued."""

    def __init__(self, feed: TurnFeed, position: int) -> None:
        self.feed, self.position = feed, position
        self.task: asyncio.Task[None]


async def _connect(url: str) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=2,
                                                 application_name=APPLICATION_NAME)
