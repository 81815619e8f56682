"""SQL of full-text search: the FTS5 index over item titles and bodies, and its upkeep.

Part of the store (``Store`` inherits it), kept apart so store.py stays a
readable size. The schema comes from the ``075_item_search`` migration in
store.py (``SEARCH_SCHEMA`` below):

- ``item_search`` is an FTS5 table with *external content*: it indexes
  ``items.title`` and ``items.body`` under the item's rowid and reads the text
  back from ``items`` for snippets, so no text is stored twice.
- ``item_search_state`` holds one row per indexed item: its rowid and the
  ``content_hash`` of the text that was indexed.

The invariant: an item has a state row exactly when the index holds its
current title and body. Inserting items does nothing here (no insert trigger:
ingest stays as fast as without search). The tag step indexes the items it
tags (``index_items``) and ``pipeline search`` first indexes whatever is
still missing (``index_pending``).

Removing an item's words from an external-content index needs the very text
that was indexed, which only exists until the row is overwritten. So two
small triggers fire when an *indexed* item's title or body changes, or the
item is deleted: they take its old words out of the index and drop its state
row, while the old text is still at hand. They cost nothing on insert, and
nothing for items never indexed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .models import SearchHit
from .store_filters import item_filters
from .store_time import parse_ts

# Ranking: BM25 with the title weighted above the body, so an item whose title
# matches comes before one that only mentions the words in passing.
TITLE_WEIGHT = 5.0
BODY_WEIGHT = 1.0

# Snippets: this many tokens of the body around the matched words. The
# markers are control characters, never found in stored text, so the caller
# can clean up the Markdown around them before showing them as it likes.
SNIPPET_TOKENS = 16
MARK_START = "\x02"
MARK_END = "\x03"

# The porter stemmer over unicode61: "regulation" finds "regulations" and
# "exported" finds "export", which is what someone searching news expects.
# The price is a little precision (distinct words that share a stem, such as
# "university" and "universe", match each other) and English-only stemming,
# acceptable for an English-language corpus ranked by BM25. remove_diacritics 2
# folds accents everywhere ("cafe" finds "café", "Zürich" finds "Zurich").
TOKENIZE = "porter unicode61 remove_diacritics 2"

SEARCH_SCHEMA = (
    f"""CREATE VIRTUAL TABLE item_search USING fts5(
        title, body, content='items', content_rowid='rowid', tokenize='{TOKENIZE}'
    )""",
    """CREATE TABLE item_search_state (
        item_rowid INTEGER PRIMARY KEY,
        content_hash TEXT NOT NULL
    )""",
    """CREATE TRIGGER items_search_changed AFTER UPDATE OF title, body ON items
       WHEN (old.title IS NOT new.title OR old.body IS NOT new.body)
         AND EXISTS (SELECT 1 FROM item_search_state WHERE item_rowid = old.rowid)
       BEGIN
         INSERT INTO item_search (item_search, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body);
         DELETE FROM item_search_state WHERE item_rowid = old.rowid;
       END""",
    """CREATE TRIGGER items_search_deleted AFTER DELETE ON items
       WHEN EXISTS (SELECT 1 FROM item_search_state WHERE item_rowid = old.rowid)
       BEGIN
         INSERT INTO item_search (item_search, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body);
         DELETE FROM item_search_state WHERE item_rowid = old.rowid;
       END""",
)

# Items whose current text is not in the index: never indexed, or changed since.
_NOT_INDEXED = "st.content_hash IS NOT i.content_hash"
_IDS = "i.id IN (SELECT value FROM json_each(?))"


class SearchQueryError(ValueError):
    """A search query that FTS5 cannot read; the message says why."""


class SearchStore:
    """Mixed into ``Store``: relies on its ``db``, ``_rows`` and ``_scalar``."""

    db: Any

    def _rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:  # provided by Store
        raise NotImplementedError

    def _scalar(self, sql: str, params: Any = ()) -> Any:  # provided by Store
        raise NotImplementedError

    def _index_where(self, where: str, params: list[Any]) -> int:
        """Bring the index up to date for the items matching ``where``, in one transaction."""
        with self.db.atomic():
            # An item still indexed under its current words whose hash moved on: take those
            # words out first (an item whose words changed was taken out by the trigger).
            self.db.execute(
                f"""INSERT INTO item_search (item_search, rowid, title, body)
                    SELECT 'delete', i.rowid, i.title, i.body
                    FROM items i JOIN item_search_state st ON st.item_rowid = i.rowid
                    WHERE {_NOT_INDEXED} AND {where}""",
                params,
            )
            cur = self.db.execute(
                f"""INSERT INTO item_search (rowid, title, body)
                    SELECT i.rowid, i.title, i.body
                    FROM items i LEFT JOIN item_search_state st ON st.item_rowid = i.rowid
                    WHERE {_NOT_INDEXED} AND {where}""",
                params,
            )
            added = cur.rowcount
            self.db.execute(
                f"""INSERT INTO item_search_state (item_rowid, content_hash)
                    SELECT i.rowid, i.content_hash
                    FROM items i LEFT JOIN item_search_state st ON st.item_rowid = i.rowid
                    WHERE {_NOT_INDEXED} AND {where}
                    ON CONFLICT (item_rowid) DO UPDATE SET content_hash = excluded.content_hash""",
                params,
            )
        return int(added)

    def index_items(self, item_ids: Iterable[str]) -> int:
        """(Re)index these items where the index lacks their current text; return how many."""
        ids = sorted(set(item_ids))
        if not ids:
            return 0
        return self._index_where(_IDS, [json.dumps(ids)])

    def unindexed_count(self) -> int:
        """Items whose current title and body are not in the search index."""
        return int(
            self._scalar(
                f"""SELECT COUNT(*) FROM items i LEFT JOIN item_search_state st ON st.item_rowid = i.rowid
                    WHERE {_NOT_INDEXED}"""
            )
        )

    def index_pending(self) -> int:
        """Index every item not indexed yet or changed since; return how many.

        Writes nothing when the index is up to date.
        """
        if not self.unindexed_count():
            return 0
        return self._index_where("1", [])

    def check_search_query(self, match: str) -> None:
        """Raise ``SearchQueryError`` if FTS5 cannot read ``match``.

        The query is tried against an empty in-memory table with the same columns,
        so an error there is the query's fault, never the database's.
        """
        con = sqlite3.connect(":memory:")
        try:
            con.execute(f"CREATE VIRTUAL TABLE q USING fts5(title, body, tokenize='{TOKENIZE}')")
            con.execute("SELECT rowid FROM q WHERE q MATCH ?", [match]).fetchall()
        except sqlite3.OperationalError as exc:
            raise SearchQueryError(str(exc)) from None
        finally:
            con.close()

    def search(
        self,
        match: str,
        *,
        topic: str | None = None,
        source: str | None = None,
        since: datetime | None = None,
        limit: int = 20,
    ) -> list[SearchHit]:
        """Items matching the FTS5 expression ``match``, best first.

        ``score`` is BM25 turned around so that higher is better; ties go to
        the newer item. ``snippet`` is a stretch of the body with the matched
        words between ``MARK_START`` and ``MARK_END``.
        """
        self.check_search_query(match)
        filters, filter_params = item_filters(topic=topic, source=source, since=since)
        where = ["item_search MATCH ?", *filters]
        params: list[Any] = [match, *filter_params]
        rows = self._rows(
            f"""SELECT i.id, i.source_id, s.name AS source_name, s.tier, i.url, i.title, i.published,
                  i.first_seen, i.kind, ei.event_id,
                  (SELECT json_group_array(topic_id) FROM
                      (SELECT topic_id FROM item_topics t WHERE t.item_id = i.id ORDER BY score DESC, topic_id))
                      AS topics,
                  bm25(item_search, {TITLE_WEIGHT}, {BODY_WEIGHT}) AS rank_bm25,
                  snippet(item_search, 1, char(2), char(3), '…', {SNIPPET_TOKENS}) AS snippet
                FROM item_search
                JOIN items i ON i.rowid = item_search.rowid
                JOIN sources s ON s.id = i.source_id
                LEFT JOIN event_items ei ON ei.item_id = i.id
                WHERE {' AND '.join(where)}
                ORDER BY rank_bm25, COALESCE(i.published, i.first_seen) DESC, i.id
                LIMIT {int(limit)}""",
            params,
        )
        return [
            SearchHit(
                id=r["id"],
                source_id=r["source_id"],
                source_name=r["source_name"],
                tier=r["tier"],
                url=r["url"],
                title=r["title"],
                published=parse_ts(r["published"]),
                first_seen=parse_ts(r["first_seen"]),  # type: ignore[arg-type]
                kind=r["kind"],
                topics=tuple(json.loads(r["topics"] or "[]")),
                event_id=r["event_id"],
                score=float(f"{-r['rank_bm25']:.6g}"),
                snippet=r["snippet"] or "",
            )
            for r in rows
        ]
