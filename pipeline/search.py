"""Search: find stored items by the words of their title and body.

The index is the store's FTS5 table (pipeline/store_search.py). The tag step
keeps it up to date; ``search_items`` first indexes anything still missing
(items ingested since the last tag run), then queries it.

By default the words a user types are searched as plain words, each quoted
for FTS5, so ``AI-Act``, ``gpt-5`` or ``U.S.`` never trip over FTS5 syntax:
every word must occur, a phrase in double quotes must occur as written, and a
trailing ``*`` matches any word that starts so. ``raw=True`` hands the query
to FTS5 as it is (AND, OR, NOT, NEAR, ``title:`` and ``body:`` filters).
"""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import replace
from datetime import datetime

from .models import SearchHit
from .store import Store
from .store_search import MARK_END, MARK_START, SearchQueryError

log = logging.getLogger(__name__)

__all__ = ["SearchQueryError", "clean_snippet", "match_expression", "search_items"]

# A phrase in double quotes (an unclosed one runs to the end), or a bare word;
# either may end in * for a prefix search.
_TERM = re.compile(r'"([^"]*)"?(\*?)|([^\s"]+)')
_WORDY = re.compile(r"\w")


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def match_expression(query: str, *, raw: bool = False) -> str:
    """The FTS5 expression for what the user typed.

    >>> match_expression('AI-Act "export controls" regul*')
    '"AI-Act" "export controls" "regul"*'
    """
    if raw:
        if not query.strip():
            raise SearchQueryError("it is empty")
        return query
    terms: list[str] = []
    for m in _TERM.finditer(query):
        phrase, phrase_star, word = m.group(1), m.group(2), m.group(3)
        if word is not None:
            text, star = (word[:-1], "*") if word.endswith("*") else (word, "")
            text = text.rstrip("*")
        else:
            text, star = phrase, phrase_star
        if _WORDY.search(text):  # punctuation alone has no words to find
            terms.append(_quoted(text.strip()) + star)
    if not terms:
        raise SearchQueryError("it has no words to search for, only punctuation")
    return " ".join(terms)


_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)\s]*\)?")
_LINK = re.compile(r"\[([^\]]*)\]\([^)\s]*\)?")
_LINK_TAIL = re.compile(r"\]\([^)\s]*\)?")  # the end of a link whose start the snippet cut off
_EMPHASIS = re.compile(r"(\*\*|__|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w))")
_LINE_MARKUP = re.compile(r"(?m)^\s*(?:#{1,6}\s+|>\s?|[-*+]\s+|\d+\.\s+)")
_SPACE = re.compile(r"\s+")


def clean_snippet(text: str, *, start: str = "[", end: str = "]") -> str:
    """A snippet of Markdown as one line of plain text, matched words between ``start`` and ``end``."""
    text = _LINE_MARKUP.sub(" ", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _LINK_TAIL.sub("", text)
    text = _EMPHASIS.sub("", text)
    text = text.replace("\\", "")
    text = _SPACE.sub(" ", text).strip()
    return text.replace(MARK_START, start).replace(MARK_END, end)


def search_items(
    store: Store,
    query: str,
    *,
    raw: bool = False,
    topic: str | None = None,
    source: str | None = None,
    since: datetime | None = None,
    limit: int = 20,
) -> list[SearchHit]:
    """Items matching ``query``, best first; raises ``SearchQueryError`` for a query FTS5 cannot read."""
    match = match_expression(query, raw=raw)
    store.check_search_query(match)  # a bad query fails before anything is written
    try:
        indexed = store.index_pending()
    except sqlite3.OperationalError as exc:  # e.g. another command holds the write lock too long
        log.warning("search index not brought up to date (%s); the newest items may be missing", exc)
    else:
        if indexed:
            log.info("indexed %d item(s) not yet in the search index", indexed)
    hits = store.search(match, topic=topic, source=source, since=since, limit=limit)
    return [replace(h, snippet=clean_snippet(h.snippet)) for h in hits]
