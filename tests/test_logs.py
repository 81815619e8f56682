"""Logs: one line per event on stderr, as text or JSON, and optionally in a rotating file."""

from __future__ import annotations

import json
import logging

from pipeline.logs import JsonFormatter, TextFormatter

from .conftest import SEEDS, write_config
from .test_schedule import set_keys


def test_json_logs_are_one_object_per_line_in_stderr_and_the_log_file(tmp_path, cli):
    config = set_keys(write_config(tmp_path, paths=[]), "log", file='"logs/pipeline.log"')
    result = cli("--log-format", "json", "-v", "ingest", SEEDS / "feeds", tmp_path / "missing.xml", config=config)
    assert result.code == 3, result.err
    events = [json.loads(line) for line in result.err.splitlines() if line.startswith("{")]
    assert events and all(set(e) >= {"time", "level", "logger", "message"} for e in events)
    assert any(e["level"] == "warning" and "missing.xml" in e["message"] for e in events)
    in_file = [json.loads(line) for line in (tmp_path / "logs" / "pipeline.log").read_text().splitlines()]
    assert [e["message"] for e in in_file] == [e["message"] for e in events]


def test_a_traceback_stays_on_one_line():
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.LogRecord("pipeline.x", logging.ERROR, __file__, 1, "failed %s", ("job",), True)
        record.exc_info = __import__("sys").exc_info()
    text = TextFormatter(with_time=True).format(record)
    assert "\n" not in text and text.endswith("ValueError: bad | value") and " ERROR pipeline.x: failed job" in text
    event = json.loads(JsonFormatter().format(record))
    assert event["message"] == "failed job" and "ValueError: bad\nvalue" in event["error"]


def _schedule_once(config, tmp_path, *args: str) -> tuple[str, str]:
    """Start `pipeline schedule`, wait for its update job to finish, stop it; return stderr and the log file."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from .conftest import ROOT

    err = tmp_path / "schedule.stderr"
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_CONFIG"}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "--config", str(config), *args, "schedule"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err.open("w"), env=env)
    log_file = tmp_path / "logs" / "pipeline.log"
    try:
        deadline = time.monotonic() + 60
        while not (log_file.exists() and "update ok" in log_file.read_text()):
            assert time.monotonic() < deadline and proc.poll() is None, err.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, err.read_text()
    finally:
        proc.kill()
    return err.read_text(), log_file.read_text()


def test_the_scheduler_logs_each_job_by_default_and_the_file_keeps_info_whatever_stderr_shows(tmp_path):
    config = set_keys(write_config(tmp_path, paths=[]), "schedule", fetch="false", daily='""', weekly='""',
                      catch_up_days="0")
    config = set_keys(config, "log", file='"logs/pipeline.log"')
    stderr, logged = _schedule_once(config, tmp_path)
    assert "INFO: update ok: " in stderr and "INFO: scheduler started" in stderr  # no -v needed
    assert " INFO pipeline.schedule: update ok: " in logged
    (tmp_path / "logs" / "pipeline.log").unlink()
    quiet_err, quiet_logged = _schedule_once(config, tmp_path, "-q")
    assert "INFO" not in quiet_err  # -q: errors only on stderr ...
    assert " INFO pipeline.schedule: update ok: " in quiet_logged  # ... and the file still has the job lines


def test_the_log_file_is_rotated_past_max_bytes(tmp_path):
    from pipeline.logs import add_log_file, setup_logging

    loggers = [logging.getLogger(name) for name in ("pipeline", "apscheduler")]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    path = tmp_path / "logs" / "pipeline.log"
    try:
        setup_logging(logging.ERROR)
        add_log_file(path, max_bytes=2000, backups=2)
        log = logging.getLogger("pipeline.test")
        for n in range(200):  # about 20 kB of lines
            log.info("event %03d: %s", n, "x" * 40)
        for handler in loggers[0].handlers:
            handler.flush()
        names = sorted(p.name for p in path.parent.iterdir())
        assert names == ["pipeline.log", "pipeline.log.1", "pipeline.log.2"]  # two backups kept, older ones gone
        texts = [path.with_name(n).read_text() for n in ("pipeline.log.2", "pipeline.log.1", "pipeline.log")]
        assert all(0 < len(t.encode()) <= 2000 for t in texts)
        numbers = [int(line.split("event ")[1][:3]) for t in texts for line in t.splitlines()]
        assert numbers == list(range(numbers[0], 200))  # oldest to newest, nothing lost between the files
        assert numbers[0] > 0  # the oldest lines were rotated away
    finally:
        for lg, (handlers, level, propagate) in zip(loggers, saved):
            for h in lg.handlers:
                if h not in handlers:
                    h.close()
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate
