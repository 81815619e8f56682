"""SQL of the fetch stage: per-source fetch state, fetch records, subscriptions.

Part of the store (``Store`` inherits it), kept apart so store.py stays a
readable size. The schema is built by the ``010_fetch_state`` migration in
store.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .models import RawDocument
from .store_time import ts

FETCH_STATE_COLUMNS = (
    "url, etag, last_modified, last_fetched, last_status, last_error, next_attempt, expires, "
    "consecutive_errors, disabled, min_interval, last_success, body_hash, moved_from, moved_to"
)
_WRITABLE = frozenset(
    (
        "etag", "last_modified", "last_fetched", "last_status", "last_error", "next_attempt", "expires",
        "consecutive_errors", "disabled", "min_interval", "last_success", "body_hash", "moved_from",
        "moved_to",
    )
)


class FetchStateStore:
    """Mixed into ``Store``: relies on its ``db`` and ``_rows``."""

    db: Any

    def _rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:  # provided by Store
        raise NotImplementedError

    def fetch_states(self) -> dict[str, dict[str, Any]]:
        """Fetch state of every source, by id."""
        return {r["id"]: r for r in self._rows(f"SELECT id, {FETCH_STATE_COLUMNS} FROM sources")}

    def save_fetch_state(self, source_id: str, values: dict[str, Any]) -> None:
        """Update some fetch-state columns of one source (times given as datetimes)."""
        bad = set(values) - _WRITABLE
        if bad:
            raise ValueError(f"not fetch-state columns: {sorted(bad)}")
        if not values:
            return
        cols = sorted(values)
        params = [ts(values[c]) if isinstance(values[c], datetime) else values[c] for c in cols]
        self.db.execute(
            f"UPDATE sources SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?", [*params, source_id]
        )

    def log_fetch(
        self, source_id: str, *, url: str, started: datetime, status: str, seconds: float, size: int,
        error: str | None,
    ) -> None:
        self.db.execute(
            """INSERT INTO fetches (source_id, url, started, status, seconds, bytes, error)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            [source_id, url, ts(started), status, round(seconds, 3), size, error],
        )

    def fetch_log(self, source_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM fetches WHERE source_id = ? ORDER BY id", [source_id])

    def entry_hashes(self, source_id: str) -> frozenset[str]:
        """Hashes of the entries (as fetched) behind this source's stored items."""
        return frozenset(
            r["entry_hash"]
            for r in self._rows("SELECT entry_hash FROM items WHERE source_id = ? AND entry_hash IS NOT NULL", [source_id])
        )

    def set_entry_hash(self, source_id: str, guid: str, entry_hash: str) -> None:
        self.db.execute("UPDATE items SET entry_hash = ? WHERE source_id = ? AND guid = ?", [entry_hash, source_id, guid])

    def set_entry_hashes(self, source_id: str, hashes: Iterable[tuple[str, str]]) -> None:
        """``set_entry_hash`` for many (entry id, hash) pairs of one source, in one statement."""
        self.db.conn.executemany(
            "UPDATE items SET entry_hash = ? WHERE source_id = ? AND guid = ?",
            [(h, source_id, guid) for guid, h in hashes],
        )

    def add_fetched_raw(self, doc: RawDocument, source_id: str) -> None:
        """Store a fetched body once, by its hash. Bytes another source sent first stay that
        source's document: the first owner is kept."""
        self.db.execute(
            """INSERT INTO raw_documents (id, source_id, origin, media, payload, headers, received)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET source_id = COALESCE(raw_documents.source_id, excluded.source_id),
                 parse_error = NULL""",
            [doc.id, source_id, doc.origin, doc.media, doc.payload, json.dumps(list(doc.headers)), ts(doc.received)],
        )

    def remove_source(self, source_id: str) -> str:
        """Stop following a source: 'deleted' when nothing refers to it, else 'unsubscribed'
        (its items stay, it is no longer fetched)."""
        with self.db.atomic():
            used = self._rows(
                """SELECT 1 FROM items WHERE source_id = ? UNION ALL
                   SELECT 1 FROM item_copies WHERE source_id = ? UNION ALL
                   SELECT 1 FROM raw_documents WHERE source_id = ? LIMIT 1""",
                [source_id, source_id, source_id],
            )
            if used:
                self.db.execute(
                    "UPDATE sources SET url = NULL, origin = 'auto', next_attempt = NULL WHERE id = ?", [source_id]
                )
                return "unsubscribed"
            self.db.execute("DELETE FROM fetches WHERE source_id = ?", [source_id])
            self.db.execute("DELETE FROM sources WHERE id = ?", [source_id])
            return "deleted"

    def source_fetch_report(self) -> list[dict[str, Any]]:
        """One row per source that has a feed URL, for `pipeline status` and `sources list`."""
        return self._rows(
            """SELECT s.id, s.name, s.tier, s.kind, s.origin, s.category, s.site,
                 COALESCE(CASE WHEN s.moved_from = s.url THEN s.moved_to END, s.url) AS url,
                 s.last_status, s.last_fetched, s.last_success, s.last_error, s.consecutive_errors,
                 s.next_attempt, s.disabled,
                 (SELECT COUNT(*) FROM items i WHERE i.source_id = s.id) AS items
               FROM sources s WHERE s.url IS NOT NULL ORDER BY s.tier, s.id"""
        )
