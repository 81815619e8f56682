"""The tags and events part of the store: what the tag and cluster stages write and read."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .models import Event, ItemTags, StoredItem
from .store_rows import ITEM_SELECT, stored_item
from .store_time import ts


class EventStore:
    """Mixed into ``Store``: relies on its ``db``, ``_rows`` and ``_scalar``."""

    db: Any

    def save_tags(self, tags: Iterable[ItemTags], now: datetime) -> int:
        """Replace the rule topics and kind of each item; return how many items changed.
        (Topics an item takes from its event, with a score of 0, are the cluster stage's.)"""
        changed = 0
        with self.db.atomic():
            for t in tags:
                before = self._rows(
                    "SELECT topic_id, score, terms FROM item_topics WHERE item_id = ? AND score > 0 ORDER BY topic_id",
                    [t.item_id],
                )
                after = sorted(
                    ({"topic_id": m.topic_id, "score": m.score, "terms": json.dumps(list(m.terms))} for m in t.topics),
                    key=lambda r: r["topic_id"],
                )
                old_kind = self._scalar("SELECT kind FROM items WHERE id = ?", [t.item_id])
                if before != after or old_kind != t.kind:
                    changed += 1
                    self.db.execute("DELETE FROM item_topics WHERE item_id = ? AND score > 0", [t.item_id])
                    for r in after:
                        self.db.execute(
                            "INSERT OR REPLACE INTO item_topics (item_id, topic_id, score, terms) VALUES (?, ?, ?, ?)",
                            [t.item_id, r["topic_id"], r["score"], r["terms"]],
                        )
                self.db.execute(
                    "UPDATE items SET kind = ?, tagged = COALESCE(tagged, ?) WHERE id = ?",
                    [t.kind, ts(now), t.item_id],
                )
        return changed

    def rule_topics(self, item_ids: Iterable[str]) -> dict[str, set[str]]:
        """The topics the rules gave each item (not those it took from its event)."""
        ids = sorted(set(item_ids))
        out: dict[str, set[str]] = {i: set() for i in ids}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            for r in self._rows(
                f"SELECT item_id, topic_id FROM item_topics WHERE score > 0 AND item_id IN ({','.join('?' * len(part))})",
                part,
            ):
                out[r["item_id"]].add(r["topic_id"])
        return out

    def set_event_topics(self, shared: dict[str, set[str]], note: str) -> int:
        """Give items the topics their event shares (kept apart from rule topics by a score of 0);
        return how many item topics changed."""
        changed = 0
        with self.db.atomic():
            for item_id, topics in sorted(shared.items()):
                before = {r["topic_id"] for r in self._rows(
                    "SELECT topic_id FROM item_topics WHERE item_id = ? AND score = 0", [item_id])}
                if before == topics:
                    continue
                changed += len(before ^ topics)
                self.db.execute("DELETE FROM item_topics WHERE item_id = ? AND score = 0", [item_id])
                for t in sorted(topics):
                    self.db.execute(
                        "INSERT INTO item_topics (item_id, topic_id, score, terms) VALUES (?, ?, 0, ?) "
                        "ON CONFLICT(item_id, topic_id) DO NOTHING",
                        [item_id, t, json.dumps([note])],
                    )
        return changed

    def item_topic_terms(self, item_id: str) -> list[dict[str, Any]]:
        return [
            {**r, "terms": json.loads(r["terms"])}
            for r in self._rows(
                "SELECT topic_id, score, terms FROM item_topics WHERE item_id = ? ORDER BY score DESC, topic_id",
                [item_id],
            )
        ]

    # --- events ---------------------------------------------------------

    def unclustered_items(self) -> list[StoredItem]:
        return [
            stored_item(r)
            for r in self._rows(ITEM_SELECT + " WHERE ei.event_id IS NULL ORDER BY i.id")
        ]

    def items_of_active_events(self, since: datetime) -> list[StoredItem]:
        """Every item of the events that have at least one item on or after ``since``."""
        return [
            stored_item(r)
            for r in self._rows(
                ITEM_SELECT
                + """ WHERE ei.event_id IN (
                        SELECT e2.event_id FROM event_items e2 JOIN items i2 ON i2.id = e2.item_id
                        WHERE COALESCE(i2.published, i2.first_seen) >= ?)
                      ORDER BY i.id""",
                [ts(since)],
            )
        ]

    def event_members(self, event_ids: Iterable[str]) -> dict[str, list[StoredItem]]:
        ids = sorted(set(event_ids))
        out: dict[str, list[StoredItem]] = {e: [] for e in ids}
        if not ids:
            return out
        rows = self._rows(
            ITEM_SELECT + f" WHERE ei.event_id IN ({','.join('?' * len(ids))}) ORDER BY i.id", ids
        )
        for r in rows:
            out[r["event_id"]].append(stored_item(r))
        return out

    def save_events(self, events: Iterable[Event], now: datetime) -> int:
        """Create or update events and their members; return how many changed."""
        changed = 0
        with self.db.atomic():
            # links may point at events written later in this transaction
            self.db.execute("PRAGMA defer_foreign_keys = ON")
            for e in events:
                row = self._rows("SELECT headline_item_id, title FROM events WHERE id = ?", [e.id])
                members = {
                    r["item_id"] for r in self._rows("SELECT item_id FROM event_items WHERE event_id = ?", [e.id])
                }
                links = {
                    (r["related_id"], r["score"])
                    for r in self._rows("SELECT related_id, score FROM event_links WHERE event_id = ?", [e.id])
                }
                same = (
                    row
                    and row[0]["headline_item_id"] == e.headline_item_id
                    and row[0]["title"] == e.title
                    and members == set(e.item_ids)
                    and links == set(e.related)
                )
                if same:
                    continue
                changed += 1
                self.db.execute(
                    """INSERT INTO events (id, headline_item_id, title, created, updated)
                       VALUES (?, ?, ?, ?, ?)
                       ON CONFLICT(id) DO UPDATE SET headline_item_id = excluded.headline_item_id,
                         title = excluded.title, updated = excluded.updated""",
                    [e.id, e.headline_item_id, e.title, ts(now), ts(now)],
                )
                for item_id in e.item_ids:
                    self.db.execute(
                        """INSERT INTO event_items (item_id, event_id) VALUES (?, ?)
                           ON CONFLICT(item_id) DO UPDATE SET event_id = excluded.event_id""",
                        [item_id, e.id],
                    )
                self.db.execute("DELETE FROM event_links WHERE event_id = ?", [e.id])
                for related_id, score in e.related:
                    self.db.execute(
                        "INSERT INTO event_links (event_id, related_id, score) VALUES (?, ?, ?)",
                        [e.id, related_id, score],
                    )
        return changed

    def term_stats(self) -> tuple[int, dict[str, int]]:
        """(items counted, documents per term) of every item clustered so far."""
        counts = {r[0]: r[1] for r in self.db.execute("SELECT term, docs FROM term_stats")}
        return counts.pop("", 0), counts

    def add_term_stats(self, docs: int, counts: Mapping[str, int]) -> None:
        rows = [("", docs), *counts.items()]
        self.db.conn.executemany(
            "INSERT INTO term_stats (term, docs) VALUES (?, ?) ON CONFLICT(term) DO UPDATE SET docs = docs + excluded.docs",
            rows,
        )

    def related_events(self, event_id: str) -> list[tuple[str, float]]:
        return [
            (r["related_id"], r["score"])
            for r in self._rows(
                "SELECT related_id, score FROM event_links WHERE event_id = ? ORDER BY score DESC, related_id",
                [event_id],
            )
        ]
