"""The database schema: a list of migrations (sqlite-utils ``Migrations``), each applied once in a
transaction and recorded, in the order they are defined here."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from .store_search import SEARCH_SCHEMA

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


@migrations(name="075_item_search")
def _m075_item_search(db: Database) -> None:
    """Full-text search: an FTS5 index over item titles and bodies, and which items it holds.

    See pipeline/store_search.py for the design. Items already stored are indexed here, once.
    """
    for sql in SEARCH_SCHEMA:
        db.execute(sql)
    db.execute("INSERT INTO item_search (rowid, title, body) SELECT rowid, title, body FROM items")
    db.execute("INSERT INTO item_search_state (item_rowid, content_hash) SELECT rowid, content_hash FROM items")


@migrations(name="080_roundups")
def _m080_roundups(db: Database) -> None:
    """Stories split from a roundup point at it; a source says whether its issues are split."""
    for sql in (
        "ALTER TABLE items ADD COLUMN parent_id TEXT REFERENCES items(id)",
        "CREATE INDEX items_parent ON items(parent_id)",
        "ALTER TABLE sources ADD COLUMN split TEXT NOT NULL DEFAULT 'auto'",
    ):
        db.execute(sql)


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


@migrations(name="100_term_stats")
def _m100_term_stats(db: Database) -> None:
    """In how many clustered items each term occurs (the empty term counts the items)."""
    db.execute("CREATE TABLE term_stats (term TEXT PRIMARY KEY, docs INTEGER NOT NULL)")
