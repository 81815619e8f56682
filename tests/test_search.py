"""Full-text search: `pipeline search` over the seeds, through the command line, on a real SQLite file."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from pipeline.models import Item, Source
from pipeline.search import clean_snippet, match_expression
from pipeline.store import Store, item_id_for, migrations
from pipeline.store_search import MARK_END, MARK_START, TOKENIZE, SearchQueryError

from .conftest import SEEDS, run_cli, write_config

NOW = "2026-04-13T06:00:00Z"
JSON_KEYS = {"id", "source", "source_name", "url", "title", "published", "tier", "kind", "topics", "event", "score",
             "snippet"}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One full run on the seeds, shared by the tests that only search."""
    tmp = tmp_path_factory.mktemp("search")
    config = write_config(tmp)
    result = run_cli("--now", NOW, "run", config=config)
    assert result.code == 0, result.err
    return tmp, config


def _search(config: Path, *args: str) -> list[dict[str, Any]]:
    result = run_cli("search", "--json", *args, config=config)
    assert result.code == 0, result.err
    return [json.loads(line) for line in result.out.splitlines()]


def _texts(db: Path) -> dict[str, tuple[str, str]]:
    """Every stored item's (title, body), by id."""
    con = sqlite3.connect(db)
    try:
        return {r[0]: (r[1], r[2]) for r in con.execute("SELECT id, title, body FROM items")}
    finally:
        con.close()


def _snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every real table (search index shadow tables included)."""
    con = sqlite3.connect(db)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE "
                                           "'CREATE VIRTUAL TABLE%' ORDER BY name")]
        return {n: sorted(con.execute(f"SELECT * FROM [{n}]").fetchall(), key=repr) for n in names}
    finally:
        con.close()


def _assert_index_matches_items(db: Path) -> None:
    """The index holds exactly the current words of every item: no stale words, nothing missing.

    Compares every (term, item, column, position) of the live index with an index
    built afresh from the items table.
    """
    con = sqlite3.connect(db)
    try:
        con.execute(f"CREATE VIRTUAL TABLE temp.fresh USING fts5(title, body, tokenize='{TOKENIZE}')")
        con.execute("INSERT INTO temp.fresh (rowid, title, body) SELECT rowid, title, body FROM items")
        con.execute("CREATE VIRTUAL TABLE temp.live_words USING fts5vocab(main, item_search, instance)")
        con.execute("CREATE VIRTUAL TABLE temp.fresh_words USING fts5vocab(temp, fresh, instance)")
        live = con.execute("SELECT term, doc, col, offset FROM temp.live_words ORDER BY 1, 2, 3, 4").fetchall()
        fresh = con.execute("SELECT term, doc, col, offset FROM temp.fresh_words ORDER BY 1, 2, 3, 4").fetchall()
        assert live == fresh
        indexed = con.execute("SELECT COUNT(*) FROM item_search_state").fetchone()[0]
        assert indexed == con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    finally:
        con.close()


# --- the query as typed ----------------------------------------------------------


def test_words_are_quoted_for_fts5():
    assert match_expression("AI-Act") == '"AI-Act"'
    assert match_expression("gpt-5 U.S.") == '"gpt-5" "U.S."'
    assert match_expression('"export controls" fable') == '"export controls" "fable"'
    assert match_expression("regul*") == '"regul"*'
    assert match_expression('"export contr"*') == '"export contr"*'
    assert match_expression('say "hi') == '"say" "hi"'  # an unclosed quote runs to the end
    assert match_expression('a"b') == '"a" "b"'
    assert match_expression("OR NOT -") == '"OR" "NOT"'  # operators are words here; punctuation alone is dropped
    with pytest.raises(SearchQueryError, match="no words to search for, only punctuation"):
        match_expression("-- * ...")
    assert match_expression("title:x OR y", raw=True) == "title:x OR y"


def test_snippets_lose_their_markdown_and_keep_the_marks():
    text = f"## Heading\n\nSee [the {MARK_START}advisory{MARK_END}](https://x.example/a) and **bold** text_name"
    assert clean_snippet(text) == "Heading See the [advisory] and bold text_name"
    assert clean_snippet(f"Open 2](https://x.example/b) {MARK_START}weights{MARK_END}…") == "Open 2 [weights]…"


# --- searching the seeds ------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "in_title"),
    [
        ("export controls", r"\bexport controls?\b"),
        ("NIS-2026-004", r"NIS-2026-004"),
        ("U.S.", r"\bU\.S\."),
    ],
)
def test_title_matches_outrank_body_only_matches(seeded, query: str, in_title: str):
    _, config = seeded
    hits = _search(config, query)
    title_hits = [bool(re.search(in_title, h["title"], re.I)) for h in hits]
    assert True in title_hits and False in title_hits, [h["title"] for h in hits]  # both kinds are found
    assert title_hits == sorted(title_hits, reverse=True), [h["title"] for h in hits]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_the_item_about_it_comes_first(seeded):
    _, config = seeded
    assert _search(config, "poisoned", "checkpoints")[0]["title"].startswith("Poisoned checkpoints on ModelCrate hub")
    first = _search(config, "Tessellate")[0]
    assert first["title"] == "Inference chip startup Tessellate Silicon raises $275M Series B"


def test_json_results_have_the_documented_keys(seeded):
    _, config = seeded
    hits = _search(config, "Glasswing")
    assert hits
    for h in hits:
        assert set(h) == JSON_KEYS
        assert h["tier"] in (1, 2, 3) and isinstance(h["topics"], list) and isinstance(h["score"], float)
        assert h["event"].startswith("ev-")
        assert h["published"].endswith("+00:00")
        assert MARK_START not in h["snippet"] and "\n" not in h["snippet"]
    assert any("[Glasswing]" in h["snippet"] for h in hits)


def test_text_output_has_rank_date_tier_source_topics_title_and_snippet(seeded):
    _, config = seeded
    result = run_cli("search", "Tessellate", config=config)
    assert result.code == 0 and result.err == ""
    first, snippet = result.out.splitlines()[:2]
    assert re.match(r" 1\. 2026-04-\d\d  t[123]  Frontier Wire +[a-z,-]+ +Inference chip startup Tessellate", first)
    assert "compute" in first
    assert snippet.startswith("    ") and "[Tessellate]" in snippet


def test_filters_and_limit(seeded):
    _, config = seeded
    everything = _search(config, "open")
    assert len(everything) == 20  # the default limit
    cyber = _search(config, "open", "--topic", "cybersecurity")
    assert cyber and all("cybersecurity" in h["topics"] for h in cyber)
    by_id = _search(config, "open", "--source", "patchline")
    assert by_id and {h["source"] for h in by_id} == {"patchline"}
    assert [h["id"] for h in _search(config, "open", "--source", "Patchline")] == [h["id"] for h in by_id]
    recent = _search(config, "open", "--since", "2026-04-11T00:00:00Z", "--limit", "50")
    assert recent and all(h["published"] >= "2026-04-11" for h in recent)
    assert len(recent) < len(_search(config, "open", "--limit", "50"))
    assert len(_search(config, "open", "--limit", "3")) == 3


def test_accents_do_not_matter(seeded):
    tmp, config = seeded
    texts = _texts(tmp / "pipeline.db")
    wojcik = {i for i, (t, b) in texts.items() if "Wójcik" in t + b}
    deja = {i for i, (t, b) in texts.items() if "déjà" in t + b}
    assert wojcik and deja
    assert {h["id"] for h in _search(config, "wojcik")} == wojcik
    assert {h["id"] for h in _search(config, "WÓJCIK")} == wojcik
    assert {h["id"] for h in _search(config, "deja")} == {h["id"] for h in _search(config, "déjà")} == deja


def test_other_forms_of_a_word_are_found(seeded):
    tmp, config = seeded
    texts = _texts(tmp / "pipeline.db")
    assert not any(re.search(r"\bregulations\b", t + b, re.I) for t, b in texts.values())
    plural = _search(config, "regulations")
    assert plural and {h["id"] for h in plural} == {h["id"] for h in _search(config, "regulation")}
    # "regulators" and "regulation" share the stem
    assert any(re.search(r"\bregulators\b", "".join(texts[h["id"]]), re.I) for h in plural)


def test_a_phrase_in_quotes_must_occur_as_written(seeded):
    tmp, config = seeded
    texts = _texts(tmp / "pipeline.db")
    words = {h["id"] for h in _search(config, "controls", "export")}
    phrase = _search(config, '"export controls"')
    assert phrase and {h["id"] for h in phrase} <= words
    for h in phrase:
        assert re.search(r"\bexport[\s\W]+controls?\b", " ".join(texts[h["id"]]), re.I), h["title"]
    assert _search(config, '"controls export"') == []


def test_prefix_search(seeded):
    _, config = seeded
    hits = _search(config, "Tessel*")
    assert hits and hits[0]["title"].startswith("Inference chip startup Tessellate")


def test_raw_mode_passes_fts5_syntax_through(seeded):
    _, config = seeded
    either = {h["id"] for h in _search(config, "--raw", "Tessellate OR Cerebras", "--limit", "50")}
    assert either == {h["id"] for h in _search(config, "Tessellate", "--limit", "50")} | {
        h["id"] for h in _search(config, "Cerebras", "--limit", "50")
    }
    titled = _search(config, "--raw", "title:Glasswing")
    assert titled and all("glasswing" in h["title"].lower() for h in titled)


@pytest.mark.parametrize("query", ["Anthropic AND", "NIS-2026-004", "U.S.", "nosuchcolumn:x", '"unclosed'])
def test_a_raw_query_fts5_cannot_read_is_one_error_line(seeded, query: str):
    _, config = seeded
    result = run_cli("search", "--raw", query, config=config)
    assert result.code == 1
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: cannot read the search query {query!r}: "), result.err


@pytest.mark.parametrize("query", ["NIS-2026-004", "U.S.", "Uni-1", "$275M", "Moody's", '"unclosed phrase'])
def test_punctuation_needs_no_escaping_by_default(seeded, query: str):
    _, config = seeded
    result = run_cli("search", query, config=config)
    assert result.code == 0 and "Error" not in result.err, result.err
    if query != '"unclosed phrase':
        assert result.out.startswith(" 1. "), query


def test_nothing_found_prints_nothing_and_says_so_on_stderr(seeded):
    _, config = seeded
    result = run_cli("search", "xylophonic", config=config)
    assert result.code == 0 and result.out == ""
    assert result.err.strip() == "no items match 'xylophonic'"
    only_punctuation = run_cli("search", "--", "--", config=config)
    assert only_punctuation.code == 1
    assert only_punctuation.err == (
        "Error: cannot read the search query '--': it has no words to search for, only punctuation\n"
    )


def test_searching_changes_nothing_in_the_database(seeded):
    tmp, config = seeded
    db = tmp / "pipeline.db"
    _assert_index_matches_items(db)  # the run's tag step indexed every item
    before = _snapshot(db)
    assert run_cli("search", "open", config=config).code == 0
    assert run_cli("search", "--json", "Glasswing", config=config).code == 0
    assert _snapshot(db) == before


# --- keeping the index up to date -----------------------------------------------------

ARTICLE = """---
title: {title}
url: https://searchdesk.example/harbour
published: 2026-04-12T09:00:00Z
---

{body}
"""


def _write_article(folder: Path, title: str, body: str) -> None:
    (folder / "harbour.md").write_text(ARTICLE.format(title=title, body=body), encoding="utf-8")


def test_new_items_are_found_before_the_next_tag_run_and_later_searches_change_nothing(tmp_path: Path):
    extra = tmp_path / "later"
    extra.mkdir()
    config = write_config(tmp_path, paths=[SEEDS / "feeds", SEEDS / "emails", SEEDS / "articles", extra])
    assert run_cli("--now", NOW, "run", config=config).code == 0
    _write_article(extra, "Harbour authority pilots a tide model", "The Quillmarsh harbour authority trained a "
                   "small forecasting model on forty years of tide gauges.")
    ingest = run_cli("--now", "2026-04-13T07:00:00Z", "ingest", extra, config=config)
    assert ingest.code == 0 and "1 new" in ingest.out, ingest.out + ingest.err
    db = tmp_path / "pipeline.db"
    con = sqlite3.connect(db)
    unindexed = con.execute("SELECT COUNT(*) FROM items").fetchone()[0] - con.execute(
        "SELECT COUNT(*) FROM item_search_state").fetchone()[0]
    con.close()
    assert unindexed == 1  # ingest leaves the index alone
    hits = _search(config, "Quillmarsh")
    assert [h["title"] for h in hits] == ["Harbour authority pilots a tide model"]
    _assert_index_matches_items(db)
    after_first = _snapshot(db)
    assert _search(config, "Quillmarsh") == hits
    assert _snapshot(db) == after_first
    # the tag step finds nothing left to index
    tag = run_cli("--now", "2026-04-13T08:00:00Z", "tag", config=config)
    assert tag.code == 0 and "1 tagged" in tag.out and "indexed" not in tag.out, tag.out


@pytest.mark.parametrize("tag_first", [True, False], ids=["tag-run", "lazy"])
def test_an_updated_item_is_found_by_its_new_words_only(tmp_path: Path, tag_first: bool):
    extra = tmp_path / "later"
    extra.mkdir()
    config = write_config(tmp_path, paths=[extra])
    _write_article(extra, "Harbour authority pilots a tide model", "The Quillmarsh authority trained a "
                   "forecasting model on tide gauges.")
    run = run_cli("--now", NOW, "run", config=config)
    assert run.code == 0 and "1 indexed" in run.out, run.out + run.err
    [before] = _search(config, "Quillmarsh")
    _write_article(extra, "Harbour authority retires its tide model", "The Brackenfold authority stopped the "
                   "forecasting model after a storm season.")
    ingest = run_cli("--now", "2026-04-13T07:00:00Z", "ingest", extra, config=config)
    assert ingest.code == 0 and "1 updated" in ingest.out, ingest.out + ingest.err
    if tag_first:
        tag = run_cli("--now", "2026-04-13T08:00:00Z", "tag", config=config)
        assert tag.code == 0 and "1 indexed" in tag.out, tag.out
    [after] = _search(config, "Brackenfold")
    assert after["id"] == before["id"] and after["title"] == "Harbour authority retires its tide model"
    assert _search(config, "Quillmarsh") == []
    assert _search(config, "pilots") == []
    assert _search(config, "--raw", "title:retires")[0]["id"] == before["id"]
    _assert_index_matches_items(tmp_path / "pipeline.db")


def test_the_migration_indexes_the_items_already_stored(tmp_path: Path):
    path = tmp_path / "old.db"
    db = Database(path)
    migrations.apply(db, stop_before="075_item_search")
    db.execute("INSERT INTO sources (id, name) VALUES ('old', 'Old Source')")
    db.execute(
        """INSERT INTO items (id, source_id, guid, title, first_seen, updated, body, content_hash)
           VALUES ('i1', 'old', 'g1', 'Stored before search existed', '2026-04-01T00:00:00+00:00',
                   '2026-04-01T00:00:00+00:00', 'A body about the Vellichor estuary.', 'h1')"""
    )
    db.conn.commit()
    db.close()
    with Store(path) as store:
        assert store.unindexed_count() == 0
        [hit] = store.search('"vellichor"')
        assert hit.id == "i1" and hit.source_name == "Old Source"
        assert f"{MARK_START}Vellichor{MARK_END}" in hit.snippet
    _assert_index_matches_items(path)


def test_stacked_accents_are_folded_and_index_items_skips_what_is_indexed(tmp_path: Path):
    when = datetime(2026, 4, 13, 6, 0, tzinfo=timezone.utc)
    with Store(tmp_path / "pipeline.db") as store:
        store.sync_sources([Source("hanoi", "Hanoi Desk", tier=2)])
        item = Item(id=item_id_for("hanoi", "g1"), source_id="hanoi", guid="g1", url=None,
                    title="Interview with Nguyễn Thị Minh", author=None, published=when,
                    body="The minister spoke about data centres.", content_hash="h1")
        assert store.upsert_item(item, when) == "new"
        assert store.unindexed_count() == 1
        assert store.index_items([item.id]) == 1
        assert store.index_items([item.id]) == 0  # already indexed under this text
        assert [h.id for h in store.search('"nguyen" "thi"')] == [item.id]
        assert [h.id for h in store.search('"NGUYỄN"')] == [item.id]
        # indexed under a hash that moved on (the same words): indexed again, its old entry taken out first
        store.db.execute("UPDATE item_search_state SET content_hash = 'older'")
        assert store.index_items([item.id]) == 1
    _assert_index_matches_items(tmp_path / "pipeline.db")
