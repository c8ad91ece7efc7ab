"""A started server takes its start-up heap out of the garbage collector's reach (server.cli.stopping):
full collections then stop requests for milliseconds instead of a fifth of a second."""

import asyncio
import gc
import socket

import uvicorn

from server.cli.stopping import Server, StopDeadline


async def answer_nothing(scope, receive, send) -> None:
    raise AssertionError("no request is sent in this test")


async def test_a_started_server_freezes_what_its_start_up_built() -> None:
    config = uvicorn.Config(answer_nothing, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = Server(config, StopDeadline(5, "test server", announce=False))
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    gc.unfreeze()
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        while not server.started:
            assert not serving.done(), serving
            await asyncio.sleep(0.01)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # this test process keeps collecting as before
        server.should_exit = True
        await serving
        listening.close()
