"""The store: all SQL lives in this module and the store_* modules it is made of.

The database is one SQLite file in WAL mode. Its schema is built by the
migrations in store_schema.py, each applied once in a transaction. Times are
stored as ISO 8601 text in UTC (store_time.py). This module holds the sources,
raw documents, items and digests; store_events.py the tags and events,
store_fetch.py, store_imap.py, store_runs.py, store_search.py,
store_summaries.py and store_digests.py the rest, each by its domain.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from .models import Item, RawDocument, Source, StoredItem
from .store_digests import DigestStore
from .store_events import EventStore
from .store_filters import item_filters
from .store_time import parse_ts, ts
from .store_fetch import FETCH_STATE_COLUMNS, FetchStateStore
from .store_imap import ImapStateStore
from .store_runs import RunsStore
from .store_rows import ITEM_SELECT, stored_item
from .store_schema import migrations
from .store_search import SearchStore
from .store_summaries import SummariesStore

# An item whose text is shorter than this is never matched to another by its
# content hash alone: short, generic texts ("Weekly update") collide too easily.
MIN_HASH_MATCH_CHARS = 200

def item_id_for(source_id: str, guid: str) -> str:
    return hashlib.sha1(f"{source_id}\0{guid}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class DigestRecord:
    id: str
    period: str
    date: str
    title: str
    path: str
    content_hash: str


class Store(EventStore, FetchStateStore, RunsStore, DigestStore, SummariesStore, SearchStore, ImapStateStore):
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = Database(self.path)
        self.db.execute("PRAGMA busy_timeout = 10000")
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.enable_wal()
        migrations.apply(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self):  # type: ignore[no-untyped-def]
        return self.db.atomic()

    def _rows(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    def _scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        row = self.db.execute(sql, list(params)).fetchone()
        return row[0] if row else None

    # --- sources -------------------------------------------------------

    def sync_sources(self, sources: Iterable[Source]) -> None:
        """Write configured sources, keeping each one's fetch state."""
        with self.db.atomic():
            for s in sources:
                self.db.execute(
                    """INSERT INTO sources (id, name, tier, kind, url, site, match, origin, category, split)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT(id) DO UPDATE SET name = excluded.name, tier = excluded.tier,
                         kind = excluded.kind, url = excluded.url, site = excluded.site,
                         match = excluded.match, origin = excluded.origin, category = excluded.category,
                         split = excluded.split""",
                    [s.id, s.name, s.tier, s.kind, s.url, s.site, json.dumps(list(s.match)), s.origin, s.category,
                     s.split],
                )

    def add_source(self, s: Source) -> None:
        """Record a source first met in the input; an existing one is left alone."""
        self.db.execute(
            """INSERT INTO sources (id, name, tier, kind, url, site, match, origin, category, split)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING""",
            [s.id, s.name, s.tier, s.kind, s.url, s.site, json.dumps(list(s.match)), s.origin, s.category, s.split],
        )

    def sources(self) -> list[Source]:
        return [
            Source(
                id=r["id"],
                name=r["name"],
                tier=r["tier"],
                kind=r["kind"],
                url=r["url"],
                site=r["site"],
                match=tuple(json.loads(r["match"])),
                origin=r["origin"],
                category=r["category"],
                split=r["split"],
            )
            for r in self._rows("SELECT * FROM sources ORDER BY id")
        ]

    def fetch_state(self, source_id: str) -> dict[str, Any]:
        rows = self._rows(
            f"SELECT {FETCH_STATE_COLUMNS} FROM sources WHERE id = ?",
            [source_id],
        )
        return rows[0] if rows else {}

    def record_fetch(
        self,
        source_id: str,
        *,
        when: datetime,
        status: str,
        error: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> None:
        self.db.execute(
            """UPDATE sources SET last_fetched = ?, last_status = ?, last_error = ?,
                 etag = COALESCE(?, etag), last_modified = COALESCE(?, last_modified)
               WHERE id = ?""",
            [ts(when), status, error, etag, last_modified, source_id],
        )

    # --- raw documents --------------------------------------------------

    def has_raw(self, raw_id: str) -> bool:
        return self._scalar("SELECT 1 FROM raw_documents WHERE id = ? AND parse_error IS NULL", [raw_id]) is not None

    def add_raw(self, doc: RawDocument, source_id: str | None) -> None:
        self.db.execute(
            """INSERT INTO raw_documents (id, source_id, origin, media, payload, headers, received)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET source_id = COALESCE(excluded.source_id, source_id),
                 parse_error = NULL""",
            [doc.id, source_id, doc.origin, doc.media, doc.payload, json.dumps(list(doc.headers)), ts(doc.received)],
        )

    def set_raw_source(self, raw_id: str, source_id: str) -> None:
        self.db.execute("UPDATE raw_documents SET source_id = ? WHERE id = ?", [source_id, raw_id])

    def mark_raw_failed(self, raw_id: str, error: str) -> None:
        self.db.execute("UPDATE raw_documents SET parse_error = ? WHERE id = ?", [error, raw_id])

    def raw_documents(self) -> Iterator[RawDocument]:
        """Every stored raw document, oldest first."""
        for r in self.db.query("SELECT * FROM raw_documents ORDER BY received, id"):
            yield RawDocument(
                id=r["id"],
                origin=r["origin"],
                media=r["media"],
                payload=r["payload"],
                received=parse_ts(r["received"]),  # type: ignore[arg-type]
                headers=tuple(tuple(h) for h in json.loads(r["headers"])),  # type: ignore[misc]
            )

    # --- items ----------------------------------------------------------

    def _find_item(self, item: Item, siblings: frozenset[str]) -> tuple[dict[str, Any], bool] | None:
        """The stored row that is the same item, and whether it is this entry's own row.

        An entry is known by its source and entry id (its own row, or a copy recorded
        in ``item_copies``); else by its canonical URL when another source stored it;
        else by its text (content hash): another source's copy, or the same source's
        entry republished under a new id. Entries of one source that only share a
        link (a status page, a home page) are different entries, and so are the
        entries one document lists side by side (``siblings``).
        """
        own = self._rows("SELECT * FROM items WHERE source_id = ? AND guid = ?", [item.source_id, item.guid])
        if own:
            return own[0], True
        copy = self._rows(
            """SELECT i.* FROM item_copies c JOIN items i ON i.id = c.item_id
               WHERE c.source_id = ? AND c.guid = ?""",
            [item.source_id, item.guid],
        )
        if copy:
            return copy[0], False
        if item.parent_id is not None:
            # a story of a roundup is that roundup's own; the same story told elsewhere is
            # another item, which clustering puts in the same event
            return None
        if item.url:
            rows = self._rows(
                "SELECT * FROM items WHERE url = ? AND source_id <> ? AND parent_id IS NULL ORDER BY first_seen, id",
                [item.url, item.source_id],
            )
            if rows:
                return rows[0], False
        if len(item.body) >= MIN_HASH_MATCH_CHARS:
            rows = self._rows(
                "SELECT * FROM items WHERE content_hash = ? AND parent_id IS NULL ORDER BY first_seen, id",
                [item.content_hash],
            )
            for row in rows:
                if row["source_id"] != item.source_id or row["guid"] not in siblings:
                    return row, False
        return None

    def _tier(self, source_id: str) -> int:
        return int(self._scalar("SELECT tier FROM sources WHERE id = ?", [source_id]) or 3)

    def upsert_item(self, item: Item, now: datetime, *, siblings: Iterable[str] = ()) -> str:
        """Store an item once; return 'new', 'updated', 'unchanged' or 'duplicate' (see ``store_item``)."""
        return self.store_item(item, now, siblings=siblings)[0]

    def store_item(self, item: Item, now: datetime, *, siblings: Iterable[str] = ()) -> tuple[str, str, str]:
        """Store an item once; return what happened ('new', 'updated', 'unchanged' or
        'duplicate') and the id and entry id of the row that holds it.

        The same entry again updates its row in place; so does the same text of
        the same source under a new entry id (a feed that changed its ids). A
        copy from another source (same canonical URL or same text) is recorded
        against the row that holds the item: 'duplicate'. The row is held by the
        better source of the two: a copy from a lower tier number (the publisher's
        own post, after an aggregator's) takes the row over, and the aggregator's
        entry becomes the recorded copy.
        """
        found = self._find_item(item, frozenset(siblings) - {item.guid})
        values = {
            "url": item.url,
            "title": item.title,
            "author": item.author,
            "published": ts(item.published),
            "body": item.body,
            "content_hash": item.content_hash,
            "categories": json.dumps(list(item.categories)),
        }
        if found is None:
            self._insert_item(item, values, now)
            return "new", item.id, item.guid
        existing, is_own = found
        held = (existing["id"], existing["guid"])
        if not is_own:
            other_source = existing["source_id"] != item.source_id
            if other_source and self._tier(item.source_id) < self._tier(existing["source_id"]):
                return self._take_over(existing, item, values, now)
            self.db.execute(
                """INSERT INTO item_copies (source_id, guid, item_id, url, first_seen) VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT(source_id, guid) DO UPDATE SET item_id = excluded.item_id, url = excluded.url""",
                [item.source_id, item.guid, existing["id"], item.url, ts(now)],
            )
            if other_source:
                return ("duplicate", *held)
            values["url"] = existing["url"] or item.url  # the row keeps the link it was first stored with
        if all(existing[k] == v for k, v in values.items()):
            return ("unchanged", *held)
        # Changed content: keep the identity and first_seen; tagging must run again.
        self.db.execute(
            """UPDATE items SET url = :url, title = :title, author = :author, published = :published,
                 body = :body, content_hash = :content_hash, categories = :categories,
                 raw_id = :raw_id, updated = :now, tagged = NULL
               WHERE id = :id""",
            {**values, "raw_id": item.raw_id, "now": ts(now), "id": existing["id"]},
        )
        return ("updated", *held)

    def _take_over(self, existing: dict[str, Any], item: Item, values: dict[str, Any], now: datetime) -> tuple[str, str, str]:
        """A better source's copy takes over a row: the row becomes its entry (same id and first
        seen), and the entry that held it is recorded as a copy."""
        self.db.execute("DELETE FROM item_copies WHERE source_id = ? AND guid = ?", [item.source_id, item.guid])
        self.db.execute(
            """INSERT INTO item_copies (source_id, guid, item_id, url, first_seen) VALUES (?, ?, ?, ?, ?)
               ON CONFLICT(source_id, guid) DO UPDATE SET item_id = excluded.item_id, url = excluded.url""",
            [existing["source_id"], existing["guid"], existing["id"], existing["url"], existing["first_seen"]],
        )
        self.db.execute(
            """UPDATE items SET source_id = :source_id, guid = :guid, url = :url, title = :title, author = :author,
                 published = :published, body = :body, content_hash = :content_hash, categories = :categories,
                 raw_id = :raw_id, updated = :now, tagged = NULL
               WHERE id = :id""",
            {**values, "source_id": item.source_id, "guid": item.guid, "raw_id": item.raw_id, "now": ts(now),
             "id": existing["id"]},
        )
        return "updated", existing["id"], item.guid

    def remove_stale_stories(self, parent_id: str, keep: Iterable[str]) -> int:
        """Remove the stories of a roundup that its latest reading no longer has (an edited
        issue, a changed split setting); their events keep their other items. Return how many."""
        keep = set(keep)
        stale = [r["id"] for r in self._rows("SELECT id, guid FROM items WHERE parent_id = ?", [parent_id])
                 if r["guid"] not in keep]
        if not stale:
            return 0
        marks = ",".join("?" * len(stale))
        for ev in self._rows(f"SELECT DISTINCT event_id FROM event_items WHERE item_id IN ({marks})", stale):
            rest = self._rows(
                f"""SELECT i.id FROM event_items e JOIN items i ON i.id = e.item_id JOIN sources s ON s.id = i.source_id
                    WHERE e.event_id = ? AND i.id NOT IN ({marks})
                    ORDER BY s.tier, COALESCE(i.published, i.first_seen), i.id""",
                [ev["event_id"], *stale],
            )
            if rest:
                self.db.execute(
                    f"UPDATE events SET headline_item_id = ? WHERE id = ? AND headline_item_id IN ({marks})",
                    [rest[0]["id"], ev["event_id"], *stale],
                )
            else:
                self.db.execute("DELETE FROM events WHERE id = ?", [ev["event_id"]])
        self.db.execute(f"DELETE FROM items WHERE id IN ({marks})", stale)
        return len(stale)

    def _insert_item(self, item: Item, values: dict[str, Any], now: datetime) -> None:
        self.db.execute(
            """INSERT INTO items (id, source_id, guid, url, title, author, published, first_seen,
                 updated, body, content_hash, raw_id, categories, parent_id)
               VALUES (:id, :source_id, :guid, :url, :title, :author, :published, :now, :now,
                 :body, :content_hash, :raw_id, :categories, :parent_id)""",
            {
                **values,
                "parent_id": item.parent_id,
                "id": item.id,
                "source_id": item.source_id,
                "guid": item.guid,
                "raw_id": item.raw_id,
                "now": ts(now),
            },
        )

    def copies_of(self, item_ids: Iterable[str]) -> dict[str, list[tuple[str, str | None]]]:
        """Other sources' copies of each item: (source id, URL), oldest first."""
        ids = sorted(set(item_ids))
        out: dict[str, list[tuple[str, str | None]]] = {}
        if not ids:
            return out
        for r in self._rows(
            f"""SELECT c.item_id, c.source_id, c.url FROM item_copies c JOIN items i ON i.id = c.item_id
                WHERE c.item_id IN ({','.join('?' * len(ids))}) AND c.source_id <> i.source_id
                ORDER BY c.first_seen, c.source_id, c.guid""",
            ids,
        ):
            out.setdefault(r["item_id"], []).append((r["source_id"], r["url"]))
        return out

    def items(
        self,
        *,
        topic: str | None = None,
        source: str | None = None,
        since: datetime | None = None,
        untagged_only: bool = False,
        ids: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[StoredItem]:
        where, params = item_filters(topic=topic, source=source, since=since)
        if untagged_only:
            where.append("i.tagged IS NULL")
        if ids is not None:
            id_list = list(ids)
            where.append(f"i.id IN ({','.join('?' * len(id_list))})")
            params += id_list
        sql = ITEM_SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY COALESCE(i.published, i.first_seen) DESC, i.id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [stored_item(r) for r in self._rows(sql, params)]

    def items_by_url(self, url: str) -> list[StoredItem]:
        rows = self._rows(ITEM_SELECT + " WHERE i.url = ? ORDER BY i.first_seen, i.id", [url])
        return [stored_item(r) for r in rows]

    # --- digests ----------------------------------------------------------

    def items_for_digest(self, *, period: str, date: str, until: datetime) -> list[StoredItem]:
        """Items first seen by ``until`` that no other digest of this period included."""
        rows = self._rows(
            ITEM_SELECT
            + """ WHERE i.first_seen <= ? AND NOT EXISTS (
                    SELECT 1 FROM digest_items di JOIN digests d ON d.id = di.digest_id
                    WHERE di.item_id = i.id AND d.period = ? AND d.date <> ?)
                  ORDER BY i.id""",
            [ts(until), period, date],
        )
        return [stored_item(r) for r in rows]

    def digest(self, digest_id: str) -> DigestRecord | None:
        rows = self._rows("SELECT id, period, date, title, path, content_hash FROM digests WHERE id = ?", [digest_id])
        return DigestRecord(**rows[0]) if rows else None

    def save_digest(
        self,
        record: DigestRecord,
        item_ids: Iterable[str],
        now: datetime,
        *,
        lead: str = "",
        content: str = "",
        story_count: int = 0,
    ) -> None:
        with self.db.atomic():
            self.db.execute(
                """INSERT INTO digests (id, period, date, title, path, content_hash, created, updated,
                     lead, content, story_count)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET title = excluded.title, path = excluded.path,
                     content_hash = excluded.content_hash, lead = excluded.lead, content = excluded.content,
                     story_count = excluded.story_count,
                     updated = CASE WHEN digests.content_hash = excluded.content_hash
                                    THEN digests.updated ELSE excluded.updated END""",
                [record.id, record.period, record.date, record.title, record.path, record.content_hash, ts(now),
                 ts(now), lead, content, story_count],
            )
            self.db.execute("DELETE FROM digest_items WHERE digest_id = ?", [record.id])
            for item_id in sorted(set(item_ids)):
                self.db.execute("INSERT INTO digest_items (digest_id, item_id) VALUES (?, ?)", [record.id, item_id])

    def items_first_seen_between(self, since: datetime, until: datetime) -> list[StoredItem]:
        """Items first seen at or after ``since`` and before ``until``."""
        rows = self._rows(
            ITEM_SELECT + " WHERE i.first_seen >= ? AND i.first_seen < ? ORDER BY i.id", [ts(since), ts(until)]
        )
        return [stored_item(r) for r in rows]

    def digested_event_ids(self) -> list[str]:
        """Events with at least one item in a recorded digest."""
        return [
            r["event_id"]
            for r in self._rows(
                """SELECT DISTINCT ei.event_id FROM digest_items di JOIN event_items ei ON ei.item_id = di.item_id
                   ORDER BY ei.event_id"""
            )
        ]

    # --- runs and status --------------------------------------------------

    def start_run(self, command: str, now: datetime) -> int:
        cur = self.db.execute(
            "INSERT INTO runs (command, started, pid) VALUES (?, ?, ?)", [command, ts(now), os.getpid()]
        )
        self.db.conn.commit()
        return int(cur.lastrowid)  # type: ignore[arg-type]

    def finish_run(self, run_id: int, *, now: datetime, status: str, counts: dict[str, Any], problems: list[str]) -> None:
        self.db.execute(
            "UPDATE runs SET finished = ?, status = ?, counts = ?, problems = ? WHERE id = ?",
            [ts(now), status, json.dumps(counts, sort_keys=True), json.dumps(problems), run_id],
        )
        self.db.conn.commit()

    def last_runs(self, limit: int = 5) -> list[dict[str, Any]]:
        return [
            {**r, "counts": json.loads(r["counts"]), "problems": json.loads(r["problems"])}
            for r in self._rows("SELECT * FROM runs ORDER BY id DESC LIMIT ?", [limit])
        ]

    def source_counts(self) -> list[dict[str, Any]]:
        return self._rows(
            """SELECT s.id, s.name, s.tier, s.origin, s.last_status, s.last_fetched,
                 (SELECT COUNT(*) FROM raw_documents r WHERE r.source_id = s.id) AS raw,
                 (SELECT COUNT(*) FROM items i WHERE i.source_id = s.id) AS items,
                 (SELECT COUNT(*) FROM items i WHERE i.source_id = s.id AND i.tagged IS NOT NULL) AS tagged,
                 (SELECT COUNT(*) FROM items i JOIN event_items e ON e.item_id = i.id
                    WHERE i.source_id = s.id) AS clustered
               FROM sources s ORDER BY s.tier, s.name"""
        )

    def stage_counts(self) -> dict[str, int]:
        return {
            "raw documents": self._scalar("SELECT COUNT(*) FROM raw_documents"),
            "raw documents failed": self._scalar("SELECT COUNT(*) FROM raw_documents WHERE parse_error IS NOT NULL"),
            "items": self._scalar("SELECT COUNT(*) FROM items"),
            "items tagged": self._scalar("SELECT COUNT(*) FROM items WHERE tagged IS NOT NULL"),
            "items with topics": self._scalar("SELECT COUNT(DISTINCT item_id) FROM item_topics"),
            "items in events": self._scalar("SELECT COUNT(*) FROM event_items"),
            "events": self._scalar("SELECT COUNT(*) FROM events"),
            "digests": self._scalar("SELECT COUNT(*) FROM digests"),
        }

    def table_counts(self) -> dict[str, int]:
        """Row counts of every table, for checks that a run added nothing twice."""
        return {name: self.db[name].count for name in self.db.table_names() if not name.startswith("_")}
