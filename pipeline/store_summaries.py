"""SQL of the summary cache: summaries written by a language model, by content hash and model.

Part of the store (``Store`` inherits it), kept apart so store.py stays a
readable size. The ``summaries`` table comes from the ``090_summaries``
migration in store.py. A summary is stored once per item text and model, so a
later run reuses it instead of asking the model again and renders the same
digest.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


class SummariesStore:
    """Mixed into ``Store``: relies on its ``db`` and ``_rows``."""

    db: Any

    def _rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:  # provided by Store
        raise NotImplementedError

    def cached_summary(self, content_hash: str, model: str) -> str | None:
        """The stored summary of this text by this model, or None."""
        rows = self._rows(
            "SELECT summary FROM summaries WHERE content_hash = ? AND model = ?", [content_hash, model]
        )
        return rows[0]["summary"] if rows else None

    def save_summary(self, content_hash: str, model: str, summary: str, now: datetime) -> None:
        """Store (or replace) the summary of this text by this model, committed at once."""
        with self.db.atomic():
            self.db.execute(
                """INSERT INTO summaries (content_hash, model, summary, created) VALUES (?, ?, ?, ?)
                   ON CONFLICT(content_hash, model) DO UPDATE SET summary = excluded.summary,
                     created = excluded.created""",
                [content_hash, model, summary, now.astimezone(timezone.utc).isoformat(timespec="seconds")],
            )
