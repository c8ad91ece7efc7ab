"""Start-up fails the battles that a dead process on this host left generating, and only those."""

import os
import socket
import uuid

from sqlalchemy import select

from arena.generator import is_alive_here, this_process
from arena.models import Battle, BattleStatus
from arena.orphans import close_orphans
from core.db import transaction
from core.registry.models import ContestantStatus
from core.registry.schemas import ContestantIn
from server.contestants import register


async def _two_models(runtime) -> tuple[int, int]:
    ids = []
    async with transaction(runtime.sessions) as session:
        for slug in ("left", "right"):
            config = {"kind": "llamacpp", "model": "smollm2-135m-instruct"}
            entry = ContestantIn(slug=slug, display_name=slug, organisation="t", config=config)
            ids.append((await register(session, entry, ContestantStatus.active, actor="test")).id)
    return ids[0], ids[1]


async def test_only_the_generating_battles_of_dead_processes_here_are_failed(runtime) -> None:
    a, b = await _two_models(runtime)
    host, pid, started = this_process().rsplit(":", 2)
    rows = {  # name -> (status, generator)
        "mine": (BattleStatus.generating, this_process()),  # a live process: never touched
        "reused_pid": (BattleStatus.generating, f"{host}:{pid}:{float(started) - 60:.2f}"),  # pid reused since
        "gone_pid": (BattleStatus.generating, f"{host}:4194999:1.00"),  # above any pid_max: surely gone
        "other_host": (BattleStatus.generating, "another-host.example:1:1.00"),  # not ours to judge
        "unknown": (BattleStatus.generating, None),  # from before generators were recorded
        "done": (BattleStatus.ready, f"{host}:4194999:1.00"),  # a dead process's finished battle stays
    }
    ids = {name: uuid.uuid4() for name in rows}
    async with transaction(runtime.sessions) as session:
        for name, (status, generator) in rows.items():
            session.add(Battle(id=ids[name], prompt="p", status=status, model_a_id=a, model_b_id=b,
                               sampling_seed=1, generator=generator))
    assert await close_orphans(runtime.sessions) == 2
    async with transaction(runtime.sessions) as session:
        stored = {battle.id: battle for battle in await session.scalars(select(Battle))}
    failed = {name for name, ident in ids.items() if stored[ident].status == BattleStatus.failed}
    assert failed == {"reused_pid", "gone_pid"}
    assert all(stored[ids[name]].finished_at is not None for name in failed)
    assert stored[ids["mine"]].status == BattleStatus.generating


def test_a_generator_names_this_host_this_pid_and_its_start() -> None:
    host, pid, _ = this_process().split(":")
    assert host == socket.gethostname()[:100] and int(pid) == os.getpid()
    assert is_alive_here(this_process())


async def test_a_new_battle_records_the_process_that_generates_it(client, runtime) -> None:
    await _two_models(runtime)
    created = await client.post("/api/v1/battles", json={"prompt": "Hello?"})
    assert created.status_code == 201, created.text
    async with transaction(runtime.sessions) as session:
        battle = await session.get(Battle, uuid.UUID(created.json()["id"]))
    assert battle.generator == this_process()


async def test_a_process_that_takes_a_battle_up_again_becomes_its_generator(runtime) -> None:
    """A next turn or a regeneration may run in another API process than the first turn: the ORM write
    that sets the battle generating again names the process that now generates it."""
    a, b = await _two_models(runtime)
    battle_id = uuid.uuid4()
    async with transaction(runtime.sessions) as session:
        session.add(Battle(id=battle_id, prompt="p", status=BattleStatus.ready, model_a_id=a, model_b_id=b,
                           sampling_seed=1, generator="another-host.example:7:1.00"))
    async with transaction(runtime.sessions) as session:
        battle = await session.get(Battle, battle_id)
        battle.status, battle.turns = BattleStatus.generating, 2  # what arena.service.add_turn writes
    async with transaction(runtime.sessions) as session:
        assert (await session.get(Battle, battle_id)).generator == this_process()


def test_a_step_of_the_wall_clock_leaves_a_live_process_alive(monkeypatch) -> None:
    """The boot time that /proc/stat reports is the wall clock minus the uptime, so it moves when the
    clock is stepped or slewed (a CI run saw it move by a second between two reads). A process's start
    must not move with it, or a live process is taken for dead and its battles are failed."""
    import psutil._pslinux

    name = this_process()
    booted = psutil._pslinux.boot_time()
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: booted + 1.0)  # what psutil adds to a start
    assert is_alive_here(name)
