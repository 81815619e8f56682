"""The store: schema from migrations, WAL, and one row per item however often it arrives."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pipeline.models import Item, Source
from pipeline.store import MIN_HASH_MATCH_CHARS, Store, item_id_for, migrations

NOW = datetime(2026, 4, 13, 6, 0, tzinfo=timezone.utc)
LONG_BODY = "Body text of a real article, long enough to be matched by its hash. " * 5


def _store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "db" / "pipeline.db")
    store.sync_sources([Source("a", "Source A", tier=1), Source("b", "Source B", tier=3)])
    return store


def _item(source: str = "a", guid: str = "g1", url: str | None = "https://x.example/1", title: str = "Title",
          body: str = LONG_BODY, chash: str = "h1") -> Item:
    return Item(id=item_id_for(source, guid), source_id=source, guid=guid, url=url, title=title, author=None,
                published=NOW, body=body, content_hash=chash)


def test_migrations_build_the_schema_in_wal_mode(tmp_path: Path):
    store = _store(tmp_path)
    tables = set(store.db.table_names())
    assert {"sources", "raw_documents", "items", "item_topics", "events", "event_items", "event_links",
            "digests", "digest_items", "runs", "_sqlite_migrations"} <= tables
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    # opening again applies nothing twice
    again = Store(tmp_path / "db" / "pipeline.db")
    assert again.db["_sqlite_migrations"].count == len(migrations._migrations)  # each once
    item_columns = {c.name for c in again.db["items"].columns}
    assert {"id", "source_id", "guid", "url", "title", "author", "published", "first_seen", "body",
            "content_hash", "raw_id", "kind"} <= item_columns


def test_same_entry_id_is_updated_in_place(tmp_path: Path):
    store = _store(tmp_path)
    assert store.upsert_item(_item(), NOW) == "new"
    assert store.upsert_item(_item(), NOW + timedelta(hours=1)) == "unchanged"
    assert store.upsert_item(_item(title="Title, corrected", chash="h2"), NOW + timedelta(hours=2)) == "updated"
    rows = list(store.db.query("SELECT id, title, first_seen, updated FROM items"))
    assert len(rows) == 1
    assert rows[0]["title"] == "Title, corrected"
    assert rows[0]["first_seen"] == "2026-04-13T06:00:00+00:00"
    assert rows[0]["updated"] == "2026-04-13T08:00:00+00:00"


def test_same_canonical_url_from_another_source_is_one_item(tmp_path: Path):
    store = _store(tmp_path)
    store.upsert_item(_item(), NOW)
    copy = _item(source="b", guid="other", title="Another headline", chash="zz")
    assert store.upsert_item(copy, NOW) == "duplicate"
    assert store.upsert_item(copy, NOW + timedelta(hours=1)) == "duplicate"  # found by its own entry id now
    rows = list(store.db.query("SELECT source_id, title FROM items"))
    assert rows == [{"source_id": "a", "title": "Title"}]  # the first arrival keeps its content
    assert store.copies_of([item_id_for("a", "g1")]) == {item_id_for("a", "g1"): [("b", "https://x.example/1")]}


def test_entries_of_one_document_that_share_a_link_stay_apart(tmp_path: Path):
    store = _store(tmp_path)
    siblings = {"g1", "g2"}
    assert store.upsert_item(_item(guid="g1", chash="h1"), NOW, siblings=siblings) == "new"
    assert store.upsert_item(_item(guid="g2", title="Second post", chash="h2"), NOW, siblings=siblings) == "new"
    assert store.db["items"].count == 2
    # the same feed later lists a third entry on that link while both others are still in it
    siblings3 = {"g1", "g2", "g3"}
    assert store.upsert_item(_item(guid="g3", title="Third", chash="h3"), NOW, siblings=siblings3) == "new"
    assert store.db["items"].count == 3


def test_a_feed_that_changes_its_entry_ids_keeps_one_item_per_text(tmp_path: Path):
    store = _store(tmp_path)
    store.upsert_item(_item(guid="old-id"), NOW, siblings={"old-id"})
    # the same text under a new entry id, in a later document: the same item
    assert store.upsert_item(_item(guid="new-id"), NOW, siblings={"new-id"}) == "unchanged"
    rows = list(store.db.query("SELECT id, guid, title FROM items"))
    assert rows == [{"id": item_id_for("a", "old-id"), "guid": "old-id", "title": "Title"}]


def test_entries_of_one_source_that_only_share_a_link_are_different_items(tmp_path: Path):
    """A status page or a home page that every entry links to: each entry stays its own item,
    even when the earlier one is no longer in the feed."""
    store = _store(tmp_path)
    store.upsert_item(_item(guid="status-1", title="Degraded service", chash="h1"), NOW, siblings={"status-1"})
    later = _item(guid="status-2", title="All systems normal", body=LONG_BODY + " Resolved.", chash="h2")
    assert store.upsert_item(later, NOW, siblings={"status-2"}) == "new"
    assert sorted(r[0] for r in store.db.execute("SELECT title FROM items")) == ["All systems normal", "Degraded service"]


def test_the_better_source_takes_over_an_item_an_aggregator_stored_first(tmp_path: Path):
    store = _store(tmp_path)  # a is tier 1, b is tier 3
    store.upsert_item(_item(source="b", guid="agg-1", title="Excerpt from an aggregator", chash="x1"), NOW)
    original = _item(source="a", guid="orig-1", title="The original post", chash="x2")
    assert store.upsert_item(original, NOW) == "updated"
    rows = list(store.db.query("SELECT id, source_id, guid, title FROM items"))
    assert rows == [{"id": item_id_for("b", "agg-1"), "source_id": "a", "guid": "orig-1", "title": "The original post"}]
    # both entries arriving again change nothing, and the aggregator's is the recorded copy
    assert store.upsert_item(original, NOW) == "unchanged"
    assert store.upsert_item(_item(source="b", guid="agg-1", title="Excerpt from an aggregator", chash="x1"), NOW) == "duplicate"
    assert store.copies_of([item_id_for("b", "agg-1")]) == {item_id_for("b", "agg-1"): [("b", "https://x.example/1")]}

def test_same_content_hash_is_one_item_but_only_for_real_texts(tmp_path: Path):
    store = _store(tmp_path)
    store.upsert_item(_item(), NOW)
    assert store.upsert_item(_item(source="b", guid="copy", url="https://mirror.example/1"), NOW) == "duplicate"
    assert store.db["items"].count == 1
    # two short, generic texts with the same hash stay apart
    short = "Weekly update."
    assert len(short) < MIN_HASH_MATCH_CHARS
    store.upsert_item(_item(guid="w1", url=None, body=short, chash="same"), NOW)
    store.upsert_item(_item(guid="w2", url=None, body=short, chash="same"), NOW)
    assert store.db["items"].count == 3


def test_an_updated_item_is_tagged_again(tmp_path: Path):
    from pipeline.models import ItemTags, TopicMatch

    store = _store(tmp_path)
    item = _item()
    store.upsert_item(item, NOW)
    store.save_tags([ItemTags(item.id, "news", (TopicMatch("policy", 3.0, ("court",)),))], NOW)
    assert store.items(untagged_only=True) == []
    store.upsert_item(_item(body=LONG_BODY + " More.", chash="h3"), NOW)
    assert [i.id for i in store.items(untagged_only=True)] == [item.id]
    assert store.item_topic_terms(item.id) == [{"topic_id": "policy", "score": 3.0, "terms": ["court"]}]


def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path):
    store = _store(tmp_path)
    try:
        with store.transaction():
            store.upsert_item(_item(), NOW)
            raise RuntimeError("crash halfway")
    except RuntimeError:
        pass
    assert store.db["items"].count == 0
    con = sqlite3.connect(tmp_path / "db" / "pipeline.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_runs_are_recorded(tmp_path: Path):
    store = _store(tmp_path)
    run = store.start_run("ingest", NOW)
    store.finish_run(run, now=NOW, status="partial", counts={"ingest.new": 3}, problems=["x.rss: bad"])
    last = store.last_runs(1)[0]
    assert (last["command"], last["status"], last["counts"], last["problems"]) == (
        "ingest", "partial", {"ingest.new": 3}, ["x.rss: bad"]
    )
