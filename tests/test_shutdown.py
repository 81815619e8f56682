"""Real processes stopped mid-run: SIGTERM, a second signal, kill -9, and two commands at once.

Each test ingests a folder of generated feed files in a subprocess, waits (by polling the
database) until it is part-way through, then acts on it; the end state is compared with an
uninterrupted run of the same folder.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from .conftest import ROOT, run_cli, write_config
from .test_schedule import set_keys

N_FILES = 120


def _generate(folder: Path, n_files: int = N_FILES) -> Path:
    folder.mkdir()
    for i in range(n_files):
        items = "".join(
            f"<item><title>Generated story {i}-{j} on model weights</title>"
            f"<link>https://gen{i % 5}.example/{i}/{j}</link><guid>gen-{i}-{j}</guid>"
            f"<pubDate>Mon, 13 Apr 2026 0{j}:00:00 GMT</pubDate>"
            f"<description>Report {i}-{j}: what the lab released and what it means.</description></item>"
            for j in range(3)
        )
        (folder / f"feed-{i:04d}.xml").write_text(
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>Generated {i % 5}</title>'
            f"<link>https://gen{i % 5}.example/</link><description>x</description>{items}</channel></rss>",
            encoding="utf-8",
        )
    return folder


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _generate(tmp_path_factory.mktemp("generated") / "feeds")


def _db(tmp_path: Path) -> Path:
    return tmp_path / "pipeline.db"


def _query(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _items(db: Path) -> tuple[set[str], int]:
    ids = {r[0] for r in _query(db, "SELECT id FROM items")}
    return ids, _query(db, "SELECT COUNT(*) FROM items")[0][0]


def _runs(db: Path) -> list[tuple[str, str]]:
    return _query(db, "SELECT command, status FROM runs ORDER BY id")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, big_folder: Path) -> set[str]:
    """The item ids of an uninterrupted ingest of the folder."""
    tmp = tmp_path_factory.mktemp("baseline")
    result = run_cli("ingest", big_folder, config=write_config(tmp, paths=[]))
    assert result.code == 0, result.err
    ids, count = _items(_db(tmp))
    assert count == len(ids) == 3 * N_FILES
    return ids


def _start(config: Path, tmp_path: Path, *args: str | Path, name: str = "proc") -> tuple[subprocess.Popen, Path]:
    err = tmp_path / f"{name}.stderr"
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_CONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--config", str(config), *map(str, args)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err.open("w"), env=env,
    )
    return proc, err


def _wait_for_files(db: Path, proc: subprocess.Popen, at_least: int, timeout: float = 30) -> int:
    """Poll the database until the process has stored ``at_least`` files; return how many."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the process ended before it could be interrupted"
        try:
            n = _query(db, "SELECT COUNT(*) FROM raw_documents")[0][0]
        except sqlite3.OperationalError:  # not created yet
            n = 0
        if n >= at_least:
            return n
        time.sleep(0.02)
    raise AssertionError("no progress")


def _assert_complete(db: Path, baseline: set[str]) -> None:
    ids, count = _items(db)
    assert count == len(ids) and ids == baseline  # nothing twice, nothing lost
    assert _query(db, "SELECT COUNT(*) FROM raw_documents")[0][0] == N_FILES
    assert _query(db, "PRAGMA integrity_check") == [("ok",)]


def test_sigterm_stops_after_the_current_file_and_a_rerun_finishes(tmp_path, big_folder, baseline):
    config = write_config(tmp_path, paths=[])
    proc, err = _start(config, tmp_path, "ingest", big_folder)
    _wait_for_files(_db(tmp_path), proc, 10)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    stderr = err.read_text()
    assert "SIGTERM received" in stderr and "ingest: stopped on request" in stderr
    stored = _query(_db(tmp_path), "SELECT COUNT(*) FROM raw_documents")[0][0]
    assert 10 <= stored < N_FILES
    (counts,) = _query(_db(tmp_path), "SELECT counts FROM runs WHERE status = 'interrupted'")[0]
    assert f'"ingest.files read": {stored}' in counts  # the run's record matches what was stored
    assert _items(_db(tmp_path))[1] == 3 * stored  # whole files only

    rerun = run_cli("ingest", big_folder, config=config)
    assert rerun.code == 0, rerun.err
    assert f"{N_FILES - stored} files read" in rerun.out
    assert _runs(_db(tmp_path)) == [("ingest", "interrupted"), ("ingest", "ok")]
    _assert_complete(_db(tmp_path), baseline)


def test_a_second_signal_stops_at_once(tmp_path, big_folder, baseline):
    config = write_config(tmp_path, paths=[])
    proc, err = _start(config, tmp_path, "ingest", big_folder)
    _wait_for_files(_db(tmp_path), proc, 10)
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 10
    while "SIGINT received" not in err.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)  # two signals sent at once would be seen as one
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=30)
    # Ended by the handler (128 + 2) or, when the second signal came as the interpreter was
    # already shutting down after recording the run, by the default action (-2): never exit 0.
    assert code in (128 + signal.SIGINT, -signal.SIGINT)
    if code > 0:
        assert "SIGINT again: stopping at once" in err.read_text()
    assert run_cli("ingest", big_folder, config=config).code == 0
    runs = _runs(_db(tmp_path))
    # the first signal may have let the run record itself just before the second one came
    assert runs[0] in (("ingest", "crashed"), ("ingest", "interrupted")) and runs[1:] == [("ingest", "ok")]
    _assert_complete(_db(tmp_path), baseline)


def test_kill_9_mid_ingest_then_a_clean_rerun(tmp_path, big_folder, baseline):
    config = write_config(tmp_path, paths=[])
    proc, _ = _start(config, tmp_path, "ingest", big_folder)
    _wait_for_files(_db(tmp_path), proc, 10)
    proc.kill()
    proc.wait(timeout=10)
    assert _query(_db(tmp_path), "PRAGMA integrity_check") == [("ok",)]
    stored = _query(_db(tmp_path), "SELECT COUNT(*) FROM raw_documents")[0][0]
    assert _items(_db(tmp_path))[1] == 3 * stored  # each file's items went in with it, or not at all

    rerun = run_cli("ingest", big_folder, config=config)
    assert rerun.code == 0, rerun.err
    assert f"took over a stale lock left by pid {proc.pid}" in rerun.err
    assert "run #1 (ingest" in rerun.err and "left unfinished" in rerun.err
    assert _runs(_db(tmp_path)) == [("ingest", "crashed"), ("ingest", "ok")]
    _assert_complete(_db(tmp_path), baseline)


HOLDER = """
import sys
from pathlib import Path
from pipeline.lock import StageLock
lock = StageLock(Path(sys.argv[1]), command="run", timeout=5)
lock.acquire()
print("locked", flush=True)
sys.stdin.readline()
lock.release()
"""


def test_two_processes_contend_for_the_lock(tmp_path):
    config = write_config(tmp_path, paths=[])
    impatient = tmp_path / "impatient.toml"
    impatient.write_text(config.read_text(encoding="utf-8"), encoding="utf-8")
    set_keys(impatient, "schedule", lock_timeout="0.5")
    lock_file = tmp_path / "pipeline.db.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_file)], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "locked"

        started = time.monotonic()
        refused = run_cli("tag", config=impatient)
        assert time.monotonic() - started >= 0.5
        assert refused.code == 1
        assert refused.err.strip().splitlines()[-1] == (
            f"Error: another pipeline command is running (pid {holder.pid}, `pipeline run` since "
            f"{json.loads(lock_file.read_text())['since']}); gave up after waiting 0.5 s for {lock_file} "
            "(schedule.lock_timeout)"
        )

        patient, err = _start(config, tmp_path, "tag", name="patient")  # waits up to 600 s
        deadline = time.monotonic() + 30
        while "waiting up to 600 s for the lock held by" not in err.read_text():
            assert time.monotonic() < deadline and patient.poll() is None, err.read_text()
            time.sleep(0.02)
        holder.stdin.write("done\n")
        holder.stdin.flush()
        assert holder.wait(timeout=10) == 0
        assert patient.wait(timeout=30) == 0, err.read_text()
        assert "stale" not in err.read_text()  # a released lock is not stale
    finally:
        holder.kill()
    assert _runs(_db(tmp_path)) == [("tag", "ok")]  # the refused command changed nothing


def test_sigterm_stops_the_scheduler_and_its_running_job(tmp_path):
    # big enough that the job is still at work after `pipeline status` ran beside it
    folder = _generate(tmp_path / "feeds", 1000)
    config = set_keys(
        write_config(tmp_path, paths=[folder]), "schedule",
        fetch="false", daily='""', weekly='""', catch_up_days="0",
    )
    proc, err = _start(config, tmp_path, "-v", "schedule")
    _wait_for_files(_db(tmp_path), proc, 10)
    second, second_err = _start(config, tmp_path, "schedule", name="second")  # beside the status below
    status = run_cli("status", config=config)
    assert f"`pipeline schedule` running (pid {proc.pid}, since " in status.out, status.out + status.err
    assert re.search(r"update +every 60 min: ingest, tag, cluster", status.out)
    assert f"busy: pid {proc.pid}, `pipeline update` since " in status.out
    assert second.wait(timeout=30) == 1
    refusal = second_err.read_text().strip()
    assert refusal.startswith("Error: `pipeline schedule` is already running for ")
    assert f"(pid {proc.pid}, `pipeline schedule` since " in refusal
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, err.read_text()
    assert _runs(_db(tmp_path)) == [("schedule", "stopped"), ("update", "interrupted")]
    assert "scheduler stopped" in err.read_text()


def test_kill_9_between_writing_a_digest_and_recording_it_leaves_it_to_catch_up(tmp_path):
    from pipeline import schedule as sch
    from pipeline.config import load_config
    from pipeline.digest import PAUSE_ENV
    from pipeline.store import Store

    from .digest_helpers import seeded_store

    config_path = set_keys(write_config(tmp_path), "schedule", daily='"0 7 * * *"', weekly='""', interval_minutes="0")
    config = load_config(config_path)
    seeded_store(config).close()  # the seeds, first seen on 13 April at 06:00
    err = tmp_path / "digest.stderr"
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_CONFIG"} | {PAUSE_ENV: "60"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--config", str(config_path), "--now", "2026-04-14T07:00:00Z",
         "digest", "--last"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err.open("w"), env=env,
    )
    files = [tmp_path / "digests" / "daily" / f"2026-04-13.{ext}" for ext in ("md", "html", "txt", "eml")]
    try:
        deadline = time.monotonic() + 60
        while "waiting before recording" not in err.read_text():  # every file written, nothing recorded yet
            assert time.monotonic() < deadline and proc.poll() is None, err.read_text()
            time.sleep(0.02)
        proc.kill()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert all(f.exists() for f in files)
    assert _query(_db(tmp_path), "SELECT COUNT(*) FROM digests") == [(0,)]  # written, never recorded

    # catch-up does not take the files for a made digest: it makes it, and records it this time
    fired = datetime(2026, 4, 14, 7, 0, 30, tzinfo=timezone.utc)
    specs = sch.job_specs(config, start=fired)
    assert sch.catch_up(config, specs, clock=lambda: fired) == ["ok"]
    with Store(config.store.path) as store:
        assert set(store.digest_dates("daily")) == {"2026-04-13"}
        held = store.db.execute("SELECT COUNT(*) FROM digest_items WHERE digest_id = 'daily:2026-04-13'").fetchone()
    assert held[0] >= 26
    assert files[0].read_text().count("\n### ") == 26
    assert _runs(_db(tmp_path))[0] == ("digest", "crashed")
