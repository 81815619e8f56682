"""SQL of recorded digests (as feeds need them) and of e-mail deliveries.

Part of the store (``Store`` inherits it), kept apart so store.py stays a
readable size. The ``lead``, ``content`` and ``story_count`` columns of
``digests`` and the ``deliveries`` table come from the ``030_deliveries``
migration in store.py, which also explains the delivery states.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .store_time import parse_ts, ts


@dataclass(frozen=True)
class DigestEntry:
    """A recorded digest with what feeds need: its lead, HTML content and times."""

    id: str
    period: str
    date: str
    title: str
    path: str
    content_hash: str
    created: datetime
    updated: datetime
    lead: str
    content: str
    story_count: int


class DigestStore:
    """Mixed into ``Store``: relies on its ``db`` and ``_rows``."""

    db: Any

    def _rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:  # provided by Store
        raise NotImplementedError

    def digest_entries(self, *, limit: int | None = None) -> list[DigestEntry]:
        """Recorded digests, newest first (by date, then period)."""
        sql = """SELECT id, period, date, title, path, content_hash, created, updated, lead, content, story_count
                 FROM digests ORDER BY updated DESC, date DESC, period, id"""
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [
            DigestEntry(**{**r, "created": parse_ts(r["created"]), "updated": parse_ts(r["updated"])})
            for r in self._rows(sql)
        ]

    def digest_entry(self, digest_id: str) -> DigestEntry:
        rows = self._rows(
            """SELECT id, period, date, title, path, content_hash, created, updated, lead, content, story_count
               FROM digests WHERE id = ?""",
            [digest_id],
        )
        if not rows:
            raise KeyError(digest_id)
        r = rows[0]
        return DigestEntry(**{**r, "created": parse_ts(r["created"]), "updated": parse_ts(r["updated"])})

    def mailable_digests(self) -> list[dict[str, Any]]:
        """Recorded digests that have stories (``id``, ``period``, ``date``, ``path``), oldest first."""
        return self._rows(
            "SELECT id, period, date, path FROM digests WHERE story_count > 0 ORDER BY date, period, id"
        )

    def digest_mailed(self, digest_id: str) -> bool:
        """Whether some address has, or may have, received the digest (a delivery 'sent' or 'sending')."""
        rows = self._rows(
            "SELECT 1 FROM deliveries WHERE digest_id = ? AND status IN ('sent', 'sending') LIMIT 1", [digest_id]
        )
        return bool(rows)

    def delivery(self, digest_id: str, address: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM deliveries WHERE digest_id = ? AND address = ?", [digest_id, address])
        return rows[0] if rows else None

    def deliveries(self, digest_id: str | None = None) -> list[dict[str, Any]]:
        if digest_id is None:
            return self._rows("SELECT * FROM deliveries ORDER BY digest_id, address")
        return self._rows("SELECT * FROM deliveries WHERE digest_id = ? ORDER BY address", [digest_id])

    def mark_delivery(
        self, digest_id: str, address: str, *, status: str, message_id: str, now: datetime, error: str | None = None
    ) -> None:
        """Record a delivery state ('sending', 'sent' or 'failed'), committed at once."""
        with self.db.atomic():
            if status == "sending":
                self.db.execute(
                    """INSERT INTO deliveries (digest_id, address, status, message_id, attempts, started)
                       VALUES (?, ?, 'sending', ?, 1, ?)
                       ON CONFLICT(digest_id, address) DO UPDATE SET status = 'sending',
                         message_id = excluded.message_id, attempts = deliveries.attempts + 1,
                         started = excluded.started, finished = NULL, error = NULL""",
                    [digest_id, address, message_id, ts(now)],
                )
            else:
                self.db.execute(
                    "UPDATE deliveries SET status = ?, finished = ?, error = ? WHERE digest_id = ? AND address = ?",
                    [status, ts(now), error, digest_id, address],
                )
