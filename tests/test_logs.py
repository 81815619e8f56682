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
