"""Logging set-up: stderr always, a rotating file when configured.

Every event is one line: in text, ``LEVEL: message`` on stderr and
``time LEVEL logger: message`` in the file; in JSON, one object per line with
the keys ``time``, ``level``, ``logger`` and ``message`` (and ``error`` when an
exception is attached). A traceback never spreads over several lines.

Each handler has its own level: stderr's follows ``-v`` / ``-q`` (warnings by
default, information for `pipeline schedule`), the file's is INFO whatever
stderr shows. The loggers let through what the most talkative handler wants.
The scheduler library's own logger stays at warnings and above.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import datetime, timezone
from pathlib import Path

FORMATS = ("text", "json")
LOGGERS = ("pipeline", "apscheduler")
FILE_LEVEL = logging.INFO
_STDERR_MARK = "_pipeline_stderr"


class TextFormatter(logging.Formatter):
    """One line per event; an exception's traceback is folded into it."""

    def __init__(self, with_time: bool) -> None:
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if with_time else "%(levelname)s: %(message)s"
        super().__init__(fmt)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            event["error"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False)


def setup_logging(level: int, fmt: str = "text") -> None:
    """Send the project's logs (and the scheduler's) to stderr at ``level``, replacing earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(with_time=False))
    handler.setLevel(level)
    setattr(handler, _STDERR_MARK, True)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
    _set_logger_levels()
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def set_stderr_level(level: int) -> None:
    """Change what reaches stderr, leaving the log file as it is."""
    for handler in logging.getLogger(LOGGERS[0]).handlers:
        if getattr(handler, _STDERR_MARK, False):
            handler.setLevel(level)
    _set_logger_levels()


def _set_logger_levels() -> None:
    for name in LOGGERS:
        logger = logging.getLogger(name)
        lowest = min((h.level for h in logger.handlers), default=logging.WARNING)
        logger.setLevel(lowest if name == "pipeline" else max(lowest, logging.WARNING))


def add_log_file(path: Path, *, max_bytes: int, backups: int, fmt: str = "text", level: int = FILE_LEVEL) -> None:
    """Also write the logs to ``path`` from ``level`` up, rotated when it passes ``max_bytes`` (idempotent).

    When the file would pass ``max_bytes``, it becomes ``path.1`` (``path.1``
    becomes ``path.2``, and so on); ``backups`` such files are kept.
    """
    path = path.resolve()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    if any(getattr(h, "baseFilename", None) == str(path) for h in loggers[0].handlers):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(with_time=True))
    handler.setLevel(level)
    for logger in loggers:  # one handler shared, so rotation happens once
        logger.addHandler(handler)
    _set_logger_levels()
