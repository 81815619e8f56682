"""The database lock: one state-changing command at a time, stale locks taken over."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from pipeline.lock import LockTimeout, StageLock, is_locked, lock_path, read_holder

from .conftest import write_config


def test_a_second_holder_waits_then_gives_up_naming_the_first(tmp_path):
    path = tmp_path / "pipeline.db.lock"
    first = StageLock(path, command="run", timeout=1)
    first.acquire()
    holder = read_holder(path)
    assert holder is not None and holder.command == "run" and is_locked(path)
    started = time.monotonic()
    with pytest.raises(LockTimeout) as exc:
        StageLock(path, command="digest", timeout=0.3, poll=0.05).acquire()
    assert time.monotonic() - started >= 0.3
    assert f"pid {holder.pid}" in str(exc.value) and "`pipeline run`" in str(exc.value)

    # A waiter gets the lock as soon as the holder lets go.
    threading.Timer(0.2, first.release).start()
    with StageLock(path, command="digest", timeout=5, poll=0.05):
        assert read_holder(path).command == "digest"
    assert read_holder(path) is None and not is_locked(path)  # a clean release names nobody


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, cli):
    config = write_config(tmp_path, paths=[])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = lock_path(tmp_path / "pipeline.db")
    lock.write_text(json.dumps({"pid": dead.pid, "command": "run", "since": "2026-04-13T06:00:00+00:00",
                                "host": __import__("socket").gethostname()}))
    result = cli("tag", config=config)
    assert result.code == 0, result.err
    assert f"took over a stale lock left by pid {dead.pid}, `pipeline run` since 2026-04-13T06:00:00+00:00" \
        f" (no longer running)" in result.err
    assert read_holder(lock) is None
