"""SQL of run records and of what the scheduler needs to know about past digests.

Part of the store (``Store`` inherits it), kept apart so store.py stays a
readable size. The ``pid`` column of ``runs`` comes from the ``050_runs_pid``
migration in store.py.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


def _run(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "counts": json.loads(row["counts"]), "problems": json.loads(row["problems"])}


class RunsStore:
    """Mixed into ``Store``: relies on its ``db`` and ``_rows``."""

    db: Any

    def _rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:  # provided by Store
        raise NotImplementedError

    def open_runs(self) -> list[dict[str, Any]]:
        """Runs still marked 'running', oldest first (their process may have died)."""
        return [_run(r) for r in self._rows("SELECT * FROM runs WHERE status = 'running' ORDER BY id")]

    def last_run(self, command: str) -> dict[str, Any] | None:
        """The latest run of a command, or None."""
        rows = self._rows("SELECT * FROM runs WHERE command = ? ORDER BY id DESC LIMIT 1", [command])
        return _run(rows[0]) if rows else None

    def digest_dates(self, period: str) -> dict[str, datetime]:
        """The date keys of the recorded digests of a period, with when each was first made."""
        return {
            r["date"]: datetime.fromisoformat(r["created"])
            for r in self._rows("SELECT date, created FROM digests WHERE period = ?", [period])
        }
