"""One state-changing command at a time per database.

The lock is a file beside the database (``pipeline.db.lock``) held with an
exclusive ``flock``: the kernel drops it when its owner dies, even by
``kill -9``, so a lock can never outlive its process. While held, the file
names its owner (pid, command, start time, host); a clean release empties it.
A file that still names an owner when the lock is free was left by a process
that died holding it: it is taken over, with a warning naming that process.

A second command waits for the lock up to a timeout, then gives up with a
message naming the holder.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from .interrupt import stop_requested

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)


class LockTimeout(Exception):
    """The lock stayed taken for the whole timeout."""


class LockWaitStopped(Exception):
    """A stop was requested while waiting for the lock: nothing was started."""


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str
    since: str
    host: str

    def describe(self) -> str:
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"pid {self.pid}{where}, `pipeline {self.command}` since {self.since}"


def lock_path(db_path: Path) -> Path:
    """The lock file of a database: ``pipeline.db`` -> ``pipeline.db.lock``."""
    return db_path.with_name(db_path.name + ".lock")


def _parse_holder(text: str) -> Holder | None:
    try:
        data = json.loads(text)
        return Holder(int(data["pid"]), str(data["command"]), str(data["since"]), str(data.get("host", "")))
    except (ValueError, KeyError, TypeError):
        return None


def read_holder(path: Path) -> Holder | None:
    """Who the lock file names as its owner (None when it names nobody)."""
    try:
        return _parse_holder(path.read_text(encoding="utf-8"))
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_locked(path: Path) -> bool:
    """Whether some process holds the lock right now."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class StageLock:
    """An exclusive lock on a database, for one command.

    Use ``acquire()`` then ``release()``, or ``with StageLock(...)``. Each
    instance opens its own file descriptor, so two threads of one process
    exclude each other too.
    """

    def __init__(self, path: Path, *, command: str, timeout: float, poll: float = 0.1):
        self.path = path
        self.command = command
        self.timeout = timeout
        self.poll = poll
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        told = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    pass
                holder = read_holder(self.path)
                who = holder.describe() if holder else "another process"
                if stop_requested():
                    raise LockWaitStopped(f"stopped while waiting for the lock held by {who}")
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"another pipeline command is running ({who}); gave up after waiting "
                        f"{self.timeout:g} s for {self.path} (schedule.lock_timeout)"
                    )
                if not told:
                    log.warning("waiting up to %g s for the lock held by %s", self.timeout, who)
                    told = True
                time.sleep(self.poll)
        except BaseException:
            os.close(fd)
            raise
        left = _parse_holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        if left is not None:
            state = "no longer running" if not pid_alive(left.pid) else "no longer holding it"
            log.warning("took over a stale lock left by %s (%s)", left.describe(), state)
        me = {
            "pid": os.getpid(),
            "command": self.command,
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode() + b"\n", 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # an empty file names no owner: a clean release
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> StageLock:
        if self._fd is None:
            self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def close_dead_runs(store: Store, now: datetime, *, own: int | None = None) -> int:
    """Mark as 'crashed' the runs left 'running' by processes that died; return how many.

    Called with the lock held: every stage run happens under the lock, so an
    open stage run is dead whatever its pid says (a pid can be reused). A
    scheduler's own run (``schedule``) is open while it lives, so it counts
    as dead only when its process is gone.
    """
    closed = 0
    for run in store.open_runs():
        if run["id"] == own:
            continue
        if run["command"] == "schedule" and run.get("pid") and run["pid"] != os.getpid() and pid_alive(run["pid"]):
            continue
        store.finish_run(run["id"], now=now, status="crashed", counts=run["counts"], problems=run["problems"])
        log.warning("run #%d (%s, started %s) was left unfinished by a process that died", run["id"],
                    run["command"], run["started"])
        closed += 1
    return closed
