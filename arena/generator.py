"""Which process generates a battle: "host:pid:start", so that a restart can tell dead from live.

Several API processes share one database, on one host or many. A battle left ``generating`` by a
process that was killed is failed at once by the next process to start on that host; a battle of a
process that still runs is never touched. The start time (since boot, which no clock change moves)
makes the pid unambiguous: a pid reused by a later process (or pid 1 of a restarted container) has
another start time, so it never passes for the one that died. Processes on other hosts cannot be checked
from here; housekeeping fails theirs later.
"""

import functools
import os
import socket

import psutil

MAX_HOST_CHARS = 100


def this_process() -> str:
    """This process's generator name; keyed by pid, so a forked child gets its own."""
    return _identity(os.getpid())


@functools.cache
def _identity(pid: int) -> str:
    return f"{this_host()}:{pid}:{_started(pid)}"


def this_host() -> str:
    return socket.gethostname()[:MAX_HOST_CHARS]


def _started(pid: int) -> str:
    """When the process started, in seconds since boot: /proc/<pid>/stat's clock ticks, which no change of
    the wall clock moves. (psutil's create_time() adds the boot time that /proc/stat derives from the wall
    clock: it stepped by a second during a CI run, and this process then took itself for dead.) Where
    there is no /proc, psutil's time since the epoch."""
    if not os.path.isdir("/proc/self"):
        return f"{psutil.Process(pid).create_time():.2f}"
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    except (FileNotFoundError, ProcessLookupError):
        raise psutil.NoSuchProcess(pid) from None
    if fields[0] == "Z":  # field 3: the state; a zombie has exited
        raise psutil.ZombieProcess(pid)
    return f"{int(fields[19]) / os.sysconf('SC_CLK_TCK'):.2f}"  # field 22: starttime, in clock ticks


def is_alive_here(generator: str) -> bool:
    """Whether the process a generator name on this host names still runs (the same pid, started at
    the same time). A name that does not parse counts as alive: it is not ours to judge."""
    _, pid, started = generator.rsplit(":", 2)
    if not pid.isdigit():
        return True
    try:
        return _started(int(pid)) == started
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:  # another user's process: it exists, so it may well be the same one
        return True
