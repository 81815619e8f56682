"""All SQL lives here.

The database is one SQLite file in WAL mode. Its schema is built by a list of
migrations (sqlite-utils ``Migrations``), each applied once in a transaction.
Times are stored as ISO 8601 text in UTC.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from .models import Event, Item, ItemTags, RawDocument, Source, StoredItem
from .store_digests import DigestStore
from .store_filters import item_filters
from .store_fetch import FETCH_STATE_COLUMNS, FetchStateStore
from .store_imap import ImapStateStore
from .store_runs import RunsStore
from .store_search import SEARCH_SCHEMA, SearchStore
from .store_summaries import SummariesStore

# An item whose text is shorter than this is never matched to another by its
# content hash alone: short, generic texts ("Weekly update") collide too easily.
MIN_HASH_MATCH_CHARS = 200

migrations = Migrations("pipeline")


@migrations(name="001_initial")
def _m001_initial(db: Database) -> None:
    for sql in (
        """CREATE TABLE sources (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            tier INTEGER NOT NULL DEFAULT 3,
            kind TEXT,
            url TEXT,
            site TEXT,
            match TEXT NOT NULL DEFAULT '[]',
            origin TEXT NOT NULL DEFAULT 'auto',
            etag TEXT,
            last_modified TEXT,
            last_fetched TEXT,
            last_status TEXT,
            last_error TEXT
        )""",
        """CREATE TABLE raw_documents (
            id TEXT PRIMARY KEY,
            source_id TEXT REFERENCES sources(id),
            origin TEXT NOT NULL,
            media TEXT NOT NULL,
            payload BLOB NOT NULL,
            headers TEXT NOT NULL DEFAULT '[]',
            received TEXT NOT NULL,
            parse_error TEXT
        )""",
        "CREATE INDEX raw_documents_origin ON raw_documents(origin)",
        """CREATE TABLE items (
            id TEXT PRIMARY KEY,
            source_id TEXT NOT NULL REFERENCES sources(id),
            guid TEXT NOT NULL,
            url TEXT,
            title TEXT NOT NULL,
            author TEXT,
            published TEXT,
            first_seen TEXT NOT NULL,
            updated TEXT NOT NULL,
            body TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            raw_id TEXT REFERENCES raw_documents(id),
            categories TEXT NOT NULL DEFAULT '[]',
            kind TEXT,
            tagged TEXT
        )""",
        "CREATE UNIQUE INDEX items_source_guid ON items(source_id, guid)",
        "CREATE INDEX items_url ON items(url)",
        "CREATE INDEX items_content_hash ON items(content_hash)",
        "CREATE INDEX items_first_seen ON items(first_seen)",
        """CREATE TABLE item_topics (
            item_id TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            topic_id TEXT NOT NULL,
            score REAL NOT NULL,
            terms TEXT NOT NULL,
            PRIMARY KEY (item_id, topic_id)
        )""",
        """CREATE TABLE events (
            id TEXT PRIMARY KEY,
            headline_item_id TEXT NOT NULL REFERENCES items(id),
            title TEXT NOT NULL,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        )""",
        """CREATE TABLE event_items (
            item_id TEXT PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
            event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE
        )""",
        "CREATE INDEX event_items_event ON event_items(event_id)",
        """CREATE TABLE event_links (
            event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
            related_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
            score REAL NOT NULL,
            PRIMARY KEY (event_id, related_id)
        )""",
        """CREATE TABLE digests (
            id TEXT PRIMARY KEY,
            period TEXT NOT NULL,
            date TEXT NOT NULL,
            title TEXT NOT NULL,
            path TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        )""",
        """CREATE TABLE digest_items (
            digest_id TEXT NOT NULL REFERENCES digests(id) ON DELETE CASCADE,
            item_id TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            PRIMARY KEY (digest_id, item_id)
        )""",
        "CREATE INDEX digest_items_item ON digest_items(item_id)",
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            command TEXT NOT NULL,
            started TEXT NOT NULL,
            finished TEXT,
            status TEXT NOT NULL DEFAULT 'running',
            counts TEXT NOT NULL DEFAULT '{}',
            problems TEXT NOT NULL DEFAULT '[]'
        )""",
    ):
        db.execute(sql)


@migrations(name="010_fetch_state")
def _m010_fetch_state(db: Database) -> None:
    """Per-source fetch scheduling: when to try next, errors in a row, why disabled, moves."""
    for sql in (
        "ALTER TABLE sources ADD COLUMN category TEXT",
        "ALTER TABLE sources ADD COLUMN next_attempt TEXT",
        "ALTER TABLE sources ADD COLUMN expires TEXT",
        "ALTER TABLE sources ADD COLUMN consecutive_errors INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE sources ADD COLUMN disabled TEXT",
        "ALTER TABLE sources ADD COLUMN min_interval REAL",
        "ALTER TABLE sources ADD COLUMN last_success TEXT",
        "ALTER TABLE sources ADD COLUMN body_hash TEXT",
        "ALTER TABLE sources ADD COLUMN moved_from TEXT",
        "ALTER TABLE sources ADD COLUMN moved_to TEXT",
        """CREATE TABLE fetches (
            id INTEGER PRIMARY KEY,
            source_id TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
            url TEXT NOT NULL,
            started TEXT NOT NULL,
            status TEXT NOT NULL,
            seconds REAL NOT NULL,
            bytes INTEGER NOT NULL DEFAULT 0,
            error TEXT
        )""",
        "CREATE INDEX fetches_source ON fetches(source_id, started)",
    ):
        db.execute(sql)


@migrations(name="010_item_entry_hash")
def _m010_item_entry_hash(db: Database) -> None:
    """A hash of each fetched entry as it arrived, so an unchanged entry is not cleaned again."""
    db.execute("ALTER TABLE items ADD COLUMN entry_hash TEXT")


@migrations(name="030_deliveries")
def _m030_deliveries(db: Database) -> None:
    """What each digest said (for feeds) and each e-mail sent of it, per address.

    A delivery row is written as 'sending' before the message goes to the SMTP
    server and set to 'sent' after the server accepted it. A row still
    'sending' later means a crash in between: the message may have gone out,
    so it is not sent again unless asked (at most once per address).
    """
    for sql in (
        "ALTER TABLE digests ADD COLUMN lead TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE digests ADD COLUMN content TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE digests ADD COLUMN story_count INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE deliveries (
            digest_id TEXT NOT NULL REFERENCES digests(id) ON DELETE CASCADE,
            address TEXT NOT NULL,
            status TEXT NOT NULL,
            message_id TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            started TEXT NOT NULL,
            finished TEXT,
            error TEXT,
            PRIMARY KEY (digest_id, address)
        )""",
    ):
        db.execute(sql)


@migrations(name="050_runs_pid")
def _m050_runs_pid(db: Database) -> None:
    """The process of each run, so a run left 'running' by a killed process can be told apart."""
    db.execute("ALTER TABLE runs ADD COLUMN pid INTEGER")


@migrations(name="060_item_copies")
def _m060_item_copies(db: Database) -> None:
    """Entries that turned out to be copies of a stored item: another source's entry with the same
    canonical URL or text, or the same source's entry under a new entry id."""
    for sql in (
        """CREATE TABLE item_copies (
            source_id TEXT NOT NULL REFERENCES sources(id),
            guid TEXT NOT NULL,
            item_id TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            url TEXT,
            first_seen TEXT NOT NULL,
            PRIMARY KEY (source_id, guid)
        )""",
        "CREATE INDEX item_copies_item ON item_copies(item_id)",
    ):
        db.execute(sql)


@migrations(name="080_roundups")
def _m080_roundups(db: Database) -> None:
    """Stories split from a roundup point at it; a source says whether its issues are split."""
    for sql in (
        "ALTER TABLE items ADD COLUMN parent_id TEXT REFERENCES items(id)",
        "CREATE INDEX items_parent ON items(parent_id)",
        "ALTER TABLE sources ADD COLUMN split TEXT NOT NULL DEFAULT 'auto'",
    ):
        db.execute(sql)


@migrations(name="075_item_search")
def _m075_item_search(db: Database) -> None:
    """Full-text search: an FTS5 index over item titles and bodies, and which items it holds.

    See pipeline/store_search.py for the design. Items already stored are indexed here, once.
    """
    for sql in SEARCH_SCHEMA:
        db.execute(sql)
    db.execute("INSERT INTO item_search (rowid, title, body) SELECT rowid, title, body FROM items")
    db.execute("INSERT INTO item_search_state (item_rowid, content_hash) SELECT rowid, content_hash FROM items")


@migrations(name="090_summaries")
def _m090_summaries(db: Database) -> None:
    """Summaries written by a language model, cached by the item's content hash and the model."""
    db.execute(
        """CREATE TABLE summaries (
            content_hash TEXT NOT NULL,
            model TEXT NOT NULL,
            summary TEXT NOT NULL,
            created TEXT NOT NULL,
            PRIMARY KEY (content_hash, model)
        )"""
    )


@migrations(name="070_imap_state")
def _m070_imap_state(db: Database) -> None:
    """How far each IMAP folder has been read: its UIDVALIDITY and the highest UID stored.

    See pipeline/store_imap.py. A row is per account id and folder; ``server`` is the
    user@host:port the UIDs belong to, so a changed server starts the folder again.
    """
    db.execute(
        """CREATE TABLE imap_state (
            account TEXT NOT NULL,
            folder TEXT NOT NULL,
            server TEXT,
            uidvalidity INTEGER,
            last_uid INTEGER NOT NULL DEFAULT 0,
            last_checked TEXT,
            last_error TEXT,
            messages INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (account, folder)
        )"""
    )


@migrations(name="100_term_stats")
def _m100_term_stats(db: Database) -> None:
    """In how many clustered items each term occurs (the empty term counts the items)."""
    db.execute("CREATE TABLE term_stats (term TEXT PRIMARY KEY, docs INTEGER NOT NULL)")


def ts(value: datetime | None) -> str | None:
    """A UTC ISO 8601 string for the store."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return value.astimezone(timezone.utc).isoformat(timespec="seconds")


def parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


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


_ITEM_SELECT = """
SELECT i.id, i.source_id, s.name AS source_name, s.tier, s.kind AS source_kind,
       i.url, i.title, i.author, i.published, i.first_seen, i.body, i.content_hash,
       i.kind, i.categories, ei.event_id, i.parent_id,
       (SELECT COUNT(*) FROM items c WHERE c.parent_id = i.id) AS children,
       (SELECT json_group_array(topic_id) FROM
           (SELECT topic_id FROM item_topics t WHERE t.item_id = i.id ORDER BY score DESC, topic_id))
           AS topics
FROM items i
JOIN sources s ON s.id = i.source_id
LEFT JOIN event_items ei ON ei.item_id = i.id
"""


def _stored_item(row: dict[str, Any]) -> StoredItem:
    return StoredItem(
        id=row["id"],
        source_id=row["source_id"],
        source_name=row["source_name"],
        tier=row["tier"],
        url=row["url"],
        title=row["title"],
        author=row["author"],
        published=parse_ts(row["published"]),
        first_seen=parse_ts(row["first_seen"]),  # type: ignore[arg-type]
        body=row["body"],
        content_hash=row["content_hash"],
        kind=row["kind"],
        topics=tuple(json.loads(row["topics"] or "[]")),
        event_id=row["event_id"],
        source_kind=row["source_kind"],
        categories=tuple(json.loads(row["categories"] or "[]")),
        parent_id=row["parent_id"],
        children=row["children"],
    )


class Store(FetchStateStore, RunsStore, DigestStore, SummariesStore, SearchStore, ImapStateStore):
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
        in ``item_copies``), else by its canonical URL or content hash. The URL and
        hash never join two entries that one document lists side by side
        (``siblings``: the entry ids of the document): a feed whose entries share
        a page link still has distinct entries.
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
        lookups: list[tuple[str, str]] = []
        if item.url:
            lookups.append(("url", item.url))
        if len(item.body) >= MIN_HASH_MATCH_CHARS:
            lookups.append(("content_hash", item.content_hash))
        for column, value in lookups:
            rows = self._rows(
                f"SELECT * FROM items WHERE {column} = ? AND parent_id IS NULL ORDER BY first_seen, id", [value]
            )
            for row in rows:
                if row["source_id"] != item.source_id or row["guid"] not in siblings:
                    return row, False
        return None

    def upsert_item(self, item: Item, now: datetime, *, siblings: Iterable[str] = ()) -> str:
        """Store an item once; return 'new', 'updated', 'unchanged' or 'duplicate' (see ``store_item``)."""
        return self.store_item(item, now, siblings=siblings)[0]

    def store_item(self, item: Item, now: datetime, *, siblings: Iterable[str] = ()) -> tuple[str, str, str]:
        """Store an item once; return what happened ('new', 'updated', 'unchanged' or
        'duplicate') and the id and entry id of the row that holds it.

        The same entry again updates its row in place. An entry of the same
        source under a new entry id (a feed that changed its ids) updates the
        row it matches. A copy from another source (same canonical URL or same
        text) is recorded against the first arrival, which keeps its content:
        'duplicate'.
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
            self.db.execute(
                """INSERT INTO item_copies (source_id, guid, item_id, url, first_seen) VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT(source_id, guid) DO UPDATE SET item_id = excluded.item_id, url = excluded.url""",
                [item.source_id, item.guid, existing["id"], item.url, ts(now)],
            )
            if existing["source_id"] != item.source_id:
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
        sql = _ITEM_SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY COALESCE(i.published, i.first_seen) DESC, i.id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [_stored_item(r) for r in self._rows(sql, params)]

    def items_by_url(self, url: str) -> list[StoredItem]:
        rows = self._rows(_ITEM_SELECT + " WHERE i.url = ? ORDER BY i.first_seen, i.id", [url])
        return [_stored_item(r) for r in rows]

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
            _stored_item(r)
            for r in self._rows(_ITEM_SELECT + " WHERE ei.event_id IS NULL ORDER BY i.id")
        ]

    def items_of_active_events(self, since: datetime) -> list[StoredItem]:
        """Every item of the events that have at least one item on or after ``since``."""
        return [
            _stored_item(r)
            for r in self._rows(
                _ITEM_SELECT
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
            _ITEM_SELECT + f" WHERE ei.event_id IN ({','.join('?' * len(ids))}) ORDER BY i.id", ids
        )
        for r in rows:
            out[r["event_id"]].append(_stored_item(r))
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

    # --- digests ----------------------------------------------------------

    def items_for_digest(self, *, period: str, date: str, until: datetime) -> list[StoredItem]:
        """Items first seen by ``until`` that no other digest of this period included."""
        rows = self._rows(
            _ITEM_SELECT
            + """ WHERE i.first_seen <= ? AND NOT EXISTS (
                    SELECT 1 FROM digest_items di JOIN digests d ON d.id = di.digest_id
                    WHERE di.item_id = i.id AND d.period = ? AND d.date <> ?)
                  ORDER BY i.id""",
            [ts(until), period, date],
        )
        return [_stored_item(r) for r in rows]

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
            _ITEM_SELECT + " WHERE i.first_seen >= ? AND i.first_seen < ? ORDER BY i.id", [ts(since), ts(until)]
        )
        return [_stored_item(r) for r in rows]

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
