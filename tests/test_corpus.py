"""The readers and the ingest step against real-world inputs nobody here wrote.

The corpus lives outside the project, in ../shared/corpus (see its README.md and
MANIFEST.tsv files); a fresh clone does not have it, so this module is skipped
when the folder is absent. Nothing is copied from it into the project.

Every feed file goes through the real ingest step (detect media -> read ->
normalize -> store), in two worker processes because the whole sweep is a few
hundred files; the other tests use what the sweep recorded.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import re
import shutil
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from .conftest import CORPUS, write_config

if not CORPUS.is_dir():
    pytest.skip(f"the shared real-world corpus is not at {CORPUS}", allow_module_level=True)

import feedparser  # noqa: E402

from pipeline.config import load_config  # noqa: E402
from pipeline.ingest import ingest_paths, raw_from_bytes  # noqa: E402
from pipeline.normalize import EmptyEntry, normalize_entry  # noqa: E402
from pipeline.readers import ReadError, read_document, split_mbox  # noqa: E402
from pipeline.store import Store  # noqa: E402

FEEDS = CORPUS / "feeds"
EMAILS = CORPUS / "emails"
HTML = CORPUS / "html"
NOW = datetime(2026, 4, 12, 12, 0, tzinfo=timezone.utc)

# Mojibake: UTF-8 read as Windows-1252/Latin-1. A bare "Ã" is not enough, since
# it is a real capital letter ("ATENÇÃO" in the Portuguese feeds); what gives
# mojibake away is "Ã" or "Â" followed by a C1/Latin-1 punctuation character,
# or the three-character remains of a UTF-8 quote or dash ("â€™", "â€œ").
MOJIBAKE = re.compile("[ÃÂ][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u2122]|â€")
# Start tags of RSS <item> and Atom <entry> elements, counted in the raw bytes
# as an independent check that an empty result really is an empty feed.
ENTRY_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s/>]")


def manifest(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / "MANIFEST.tsv").open(encoding="utf-8", newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)}


def rel(path: Path, folder: Path = FEEDS) -> str:
    return path.relative_to(folder).as_posix()


def items_read(counts: dict[str, int]) -> int:
    """Entries of one file that were read and stored: new, changed or already there."""
    return counts.get("new", 0) + counts.get("updated", 0) + counts.get("unchanged", 0)


def names_file(where: str, path: Path) -> bool:
    """Whether a Problem's ``where`` is this file (ingest may add " (entry N)")."""
    return (Path.cwd() / where.split(" (entry ")[0]).resolve() == path.resolve()


# --- the sweep --------------------------------------------------------------


def in_parallel(fn: Any, tasks: list[tuple[Any, ...]]) -> list[Any]:
    """fn(*task) for every task, in two worker processes (this is a 2-core machine); results in order."""
    workers = max(1, min(2, os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fn, *task) for task in tasks]
        return [future.result() for future in futures]


def _ingest_group(config_path: str, template: str, store_path: str, files: list[str]) -> list[dict[str, Any]]:
    """Ingest files one at a time into one new store; record what happened to each."""
    logging.disable(logging.WARNING)  # every refusal is also logged; the counts say it all
    config = load_config(config_path)
    shutil.copyfile(template, store_path)  # an empty store, migrated once: far quicker than migrating each
    out = []
    with Store(store_path) as store:
        for name in files:
            path = Path(name)
            result: dict[str, Any] = {"file": name, "store": store_path, "counts": {}, "problems": [], "error": None}
            try:
                step = ingest_paths(store, config, [path], NOW)
                result["counts"] = dict(step.counts)
                result["problems"] = [(p.where, p.message) for p in step.problems]
            except BaseException:  # noqa: BLE001 - any escaping exception is the failure this sweep looks for
                result["error"] = traceback.format_exc()
            result["stored"] = store.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            if len(files) == 1 and result["stored"] < items_read(result["counts"]):
                result["distinct"] = _distinct_guids(path)  # for the stored-items test, done here in parallel
            out.append(result)
    return out


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every file under feeds/ ingested: realworld/ one store per feed, other folders one store each."""
    tmp = tmp_path_factory.mktemp("corpus-sweep")
    config_path = str(write_config(tmp, paths=[]))
    template = tmp / "template.db"
    Store(template).close()
    files = sorted(p for p in FEEDS.rglob("*") if p.is_file())  # MANIFEST.tsv too: it must be refused, not crash
    groups: dict[str, list[str]] = {}
    for p in files:
        key = rel(p) if p.parent.name == "realworld" else rel(p.parent)
        groups.setdefault(key, []).append(str(p))
    ordered = sorted(groups.values(), key=lambda group: -sum(Path(f).stat().st_size for f in group))  # biggest first
    started = time.perf_counter()
    tasks = [(config_path, str(template), str(tmp / f"store-{n}.db"), group) for n, group in enumerate(ordered)]
    results = [r for group in in_parallel(_ingest_group, tasks) for r in group]
    print(f"\nsweep: {len(results)} files under {FEEDS} in {time.perf_counter() - started:.1f}s")
    assert len(results) == len(files)
    return {rel(Path(r["file"])): r for r in results}


# Files the corpus README lists as needing "a clean error" (edgecases broken-*,
# invalid*, notafeed.html, saxerror.xml, compressed.xml, the RSS-in-JSON decoy),
# and what we do with each. The README's own rule is that "a crash or a silent
# half-parse" is wrong; some of these are better read than refused, as the
# comment on each says, and the test checks we read all of them, not part.
MUST_REFUSE = {
    "MANIFEST.tsv": "unrecognized file type",
    "realworld/scriptingnews.rss-in-json.json": "not a JSON Feed",
    "edgecases/gofeed/json/invalid/invalid.json": "not valid JSON: line 3, column 1",
    "edgecases/gofeed/universal/invalid.json": "not valid JSON: line 3, column 1",
    "edgecases/atoma/rss/broken-no-channel.xml": "empty feed",  # <rss version="2.0"></rss>
    "edgecases/atoma/opml/broken-no-title.xml": "OPML subscription list, not a feed",
    # Not in the README's list: a double XML declaration and prefixed RSS
    # elements leave feedparser with no entries at all out of two.
    "edgecases/fastfeedparser/malformed_rss_namespaced.xml": "only 0 of 2 entries could be read",
}
MUST_READ_ALL = {
    # saxerror.xml has an unescaped "&" in the second of three items. node-feedparser's
    # strict SAX parser errors; feedparser's loose parser reads all three, the one after the
    # error included. We read it like the 21 ill-formed realworld feeds (bozo=1), which the
    # README says must still yield their entries: all of them, with a logged warning.
    "edgecases/node-feedparser/saxerror.xml": 3,
    # Gzip bytes of well-formed feeds: read_document gunzips any payload, as an HTTP client
    # would, so these are whole feeds, not errors ("invalid characters" are what a parser
    # that does not gunzip sees).
    "edgecases/node-feedparser/compressed.xml": 10,
    "edgecases/node-feedparser/invalid-characters-gzipped.xml": 25,
    # lemon24/reader's own expectation for this file (tests/data/invalid.json.py) is all 8
    # entries with the wrongly-typed fields ignored; 7 of them are then left with neither a
    # title nor text and are refused one by one as empty entries (asserted below).
    "edgecases/reader/invalid.json": 1,
}
# atoma's broken-* files break a MUST of the spec that feeds in the wild break too; atoma's
# own tests (tests/atom/test_atom.py, tests/rss/test_rss.py) read most of them and expect
# the missing field to be None. We read every entry they have (the manifest's count).
# broken-missing-id.xml has no entries at all: it is read as an empty feed, which loses nothing.
ATOMA_BROKEN = "edgecases/atoma/"


def test_sweep_every_feed_file_is_read_or_refused_cleanly(sweep: dict[str, dict[str, Any]]) -> None:
    crashed = {f: r["error"] for f, r in sweep.items() if r["error"]}
    assert not crashed, "exceptions escaped the ingest step:\n" + "\n".join(f"{f}:\n{e}" for f, e in crashed.items())

    by_hash: dict[bytes, list[str]] = {}
    silent = []
    for name, r in sweep.items():
        path, counts, problems = FEEDS / name, r["counts"], r["problems"]
        if counts.get("failed"):
            # refused: one Problem that names the file and says why
            assert counts == {"failed": 1}, (name, counts)
            assert len(problems) == 1 and names_file(problems[0][0], path), (name, problems)
            assert problems[0][1].strip(), (name, "refused without a reason")
            continue
        if counts.get("unchanged files"):
            # the same bytes as a file read before it into the same store
            twins = by_hash.get(path.read_bytes(), [])
            assert twins, (name, "skipped as unchanged, but no earlier file has the same bytes")
            continue
        by_hash.setdefault(path.read_bytes(), []).append(name)
        assert counts.get("files read") == 1, (name, counts)
        empty = counts.get("empty entries", 0)
        # every entry refused as empty is a Problem naming the file and the entry
        assert len(problems) == empty, (name, problems)
        assert all(names_file(w, path) and "(entry " in w and m for w, m in problems), (name, problems)
        if items_read(counts) or empty:
            continue
        # Read, yet nothing came out of it: only right for a feed that has no entries.
        payload = path.read_bytes()
        if payload[:2] == b"\x1f\x8b":
            payload = gzip.decompress(payload)
        if ENTRY_TAG.search(payload) or name.endswith((".json", ".html")):
            silent.append(name)
    assert not silent, "read as if empty, though they hold entries:\n" + "\n".join(silent)


def test_sweep_files_the_readme_lists_get_a_clean_error_or_are_read_whole(
    sweep: dict[str, dict[str, Any]],
) -> None:
    for name, reason in MUST_REFUSE.items():
        r = sweep[name]
        assert r["counts"] == {"failed": 1}, (name, r["counts"])
        assert reason in r["problems"][0][1], (name, r["problems"])
    for name, n in MUST_READ_ALL.items():
        r = sweep[name]
        assert items_read(r["counts"]) == n and not r["counts"].get("failed"), (name, r["counts"])
    assert sweep["edgecases/reader/invalid.json"]["counts"].get("empty entries") == 7
    listed = [n for n in sweep if re.search(r"(^|/)(broken-|invalid)[^/]*$", n)]
    assert listed, "the corpus no longer has broken-* or invalid* files"
    feeds_manifest = manifest(FEEDS)
    for name in listed:
        if name in MUST_REFUSE or name in MUST_READ_ALL:
            continue
        assert name.startswith(ATOMA_BROKEN), f"{name}: decide whether it is refused or read, and say why"
        expected = int(feeds_manifest[name]["entries"] or 0)
        assert items_read(sweep[name]["counts"]) == expected, (name, sweep[name]["counts"], expected)

    # notafeed.html: ingest goes by the .html suffix and reads it as an article page, which
    # is what it is (a title and a paragraph). Offered as a feed, as `fetch` would offer a
    # downloaded body, it must be refused.
    assert items_read(sweep["edgecases/node-feedparser/notafeed.html"]["counts"]) == 1
    html = FEEDS / "edgecases/node-feedparser/notafeed.html"
    with pytest.raises(ReadError, match="not a"):
        read_document(raw_from_bytes(html.read_bytes(), origin="https://example.com/feed", media="feed", received=NOW))


def test_sweep_ill_formed_realworld_feeds_still_yield_their_entries(sweep: dict[str, dict[str, Any]]) -> None:
    bozo = {f: row for f, row in manifest(FEEDS).items() if f.startswith("realworld/") and row["bozo"] == "1"}
    assert len(bozo) >= 20, "the manifest no longer marks the ill-formed realworld feeds"
    for name, row in bozo.items():
        counts = sweep[name]["counts"]
        assert not counts.get("failed"), (name, sweep[name]["problems"])
        assert items_read(counts) + counts.get("empty entries", 0) == int(row["entries"]), (name, counts, row["entries"])
        assert items_read(counts) > 0, name


def test_sweep_counts_agree_with_feedparser_wherever_the_manifest_has_one(sweep: dict[str, dict[str, Any]]) -> None:
    """Every file read, not just realworld/, has as many entries as feedparser counted.

    The manifest's count is feedparser's (JSON Feed: len(items)); an entry we refuse
    as empty still counts as read here. Files feedparser could not read (format
    "unknown": gzip bytes, an HTML page) have no count to compare with.
    """
    mismatches = []
    for name, row in manifest(FEEDS).items():
        r = sweep.get(name)
        if r is None or not row["entries"] or row["format"] in ("", "unknown") or r["counts"].get("failed"):
            continue
        if r["counts"].get("unchanged files"):
            continue
        got = items_read(r["counts"]) + r["counts"].get("empty entries", 0)
        if got != int(row["entries"]):
            mismatches.append(f"{name}: manifest {row['entries']}, read {got} {r['counts']}")
    assert not mismatches, "\n".join(mismatches)


# --- entry counts of the realworld feeds -------------------------------------


def _feedparser_empty_entries(path: Path) -> int:
    """Entries feedparser finds with no title and no text: what normalize refuses as EmptyEntry."""
    parsed = feedparser.parse(path.read_bytes(), sanitize_html=False, resolve_relative_uris=False)
    return sum(
        1
        for e in parsed.entries
        if not (e.get("title") or "").strip()
        and not (e.get("summary") or "").strip()
        and not any((c.get("value") or "").strip() for c in e.get("content") or [])
    )


def test_realworld_entry_counts_match_the_manifest(sweep: dict[str, dict[str, Any]]) -> None:
    rows = {f: row for f, row in manifest(FEEDS).items() if f.startswith("realworld/")}
    assert len(rows) >= 160
    total = read_total = 0
    explained: list[str] = []
    for name, row in sorted(rows.items()):
        counts = sweep[name]["counts"]
        expected = int(row["entries"] or 0)
        if name in MUST_REFUSE:
            assert counts.get("failed") and expected == 0, (name, counts)
            continue
        read, empty = items_read(counts), counts.get("empty entries", 0)
        total += expected
        read_total += read
        # The only difference allowed: entries with neither a title nor any text, which
        # normalize refuses (EmptyEntry) and ingest reports one by one. feedparser,
        # parsing the file on its own, must agree that exactly that many are empty.
        assert read + empty == expected, (name, counts, expected)
        if empty:
            assert _feedparser_empty_entries(FEEDS / name) == empty, name
            explained.append(f"  {name}: {expected} entries, {empty} with neither title nor text (refused as empty)")
    print(f"\nrealworld: {len(rows)} files, {total} entries in the manifest, {read_total} read")
    print("\n".join(explained) or "  every count matches")


def _distinct_guids(path: Path) -> int:
    """Distinct entry ids among the entries a feed yields (empty ones left out)."""
    doc = raw_from_bytes(path.read_bytes(), origin=str(path), media="feed", received=NOW)
    guids = set()
    for pd in read_document(doc):
        for entry in pd.entries:
            try:
                normalize_entry(entry, source_id="s", raw_id=None, base_url=None)
            except EmptyEntry:
                continue
            guids.add(entry.guid)
    return len(guids)


def test_realworld_stored_items_are_the_distinct_entries(sweep: dict[str, dict[str, Any]]) -> None:
    """Each realworld feed has a store of its own, so its stored items are its distinct entries.

    Fewer items than entries read is right only when entries repeat an id: an
    entry listed twice is one item. Entries without an id are told apart by
    their link, or, when several share one link, by their link and title.
    """
    short = {}
    for name, r in sweep.items():
        if name.startswith("realworld/") and not r["counts"].get("failed") and r["stored"] < items_read(r["counts"]):
            short[name] = (items_read(r["counts"]), r["stored"], r["distinct"])
    print("\nrealworld feeds with fewer stored items than entries read (read, stored, distinct ids):")
    for name, (read, stored, distinct) in sorted(short.items()):
        print(f"  {name}: {read}, {stored}, {distinct}")
    wrong = {n: v for n, v in short.items() if v[1] != v[2]}
    assert not wrong, sorted(wrong)


# --- encodings ---------------------------------------------------------------


def _stored_titles(sweep: dict[str, dict[str, Any]], name: str) -> list[str]:
    with Store(sweep[name]["store"]) as store:
        return [row[0] for row in store.db.execute("SELECT title FROM items ORDER BY rowid")]


def _feedparser_titles(path: Path) -> list[str]:
    parsed = feedparser.parse(path.read_bytes(), sanitize_html=False, resolve_relative_uris=False)
    return [" ".join(e.title.split()) for e in parsed.entries if e.get("title", "").strip()]


@pytest.mark.parametrize(
    ("name", "letters"),
    [
        ("realworld/golem-de.iso-8859-1.rss20.xml", "äöüÄÖÜß"),
        ("realworld/cerclepsy-fr.no-decl-iso-8859-1.rss20.xml", "éèàçêôù"),
        ("realworld/ibash-org-ru.windows-1251.rss20.xml", "абвгдеёжзийклмнопрстуфхцчшщыэюя№"),
        ("realworld/orenburg-news.windows-1251.rss20.xml", "абвгдеёжзийклмнопрстуфхцчшщыэюя"),
        ("realworld/bbc-urdu.rss20.xml", "ابپتٹثجچحخدڈذرڑزژسشصضطظعغفقکگلمنوہھیے"),
        ("realworld/geekpark-cn.rss20.xml", "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年"),
    ],
)
def test_non_utf8_and_non_latin_feeds_decode_to_the_right_text(
    sweep: dict[str, dict[str, Any]], name: str, letters: str
) -> None:
    stored = _stored_titles(sweep, name)
    reference = _feedparser_titles(FEEDS / name)  # feedparser is the reference here
    assert stored and reference
    # every stored title is one of feedparser's (ours may drop markup feedparser kept)
    missing = [t for t in stored if t not in reference and not any(t in r for r in reference)]
    assert not missing, missing[:5]
    assert any(ch in t for t in stored for ch in letters), f"no title of {name} has any of {letters!r}"
    assert not [t for t in stored if MOJIBAKE.search(t) or "\ufffd" in t]


def test_no_stored_realworld_title_is_mojibake(sweep: dict[str, dict[str, Any]]) -> None:
    bad = []
    for name, r in sweep.items():
        if name.startswith("realworld/") and items_read(r["counts"]):
            bad += [f"{name}: {t}" for t in _stored_titles(sweep, name) if MOJIBAKE.search(t)]
    assert not bad, "\n".join(bad[:20])


CHARDET_TITLES = {
    # file under edgecases/feedparser/illformed/chardet/ -> the real encoding, from its Expect: line
    "eucjp.xml": "euc-jp",
    "euckr.xml": "euc-kr",
    "gb2312.xml": "gb2312",
    "koi8r.xml": "koi8-r",
    "shiftjis.xml": "shift_jis",
}


def _chardet_available() -> bool:
    try:
        import chardet  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("filename", sorted(CHARDET_TITLES))
def test_undeclared_legacy_encodings_match_feedparser(filename: str) -> None:
    """No declaration, not UTF-8: we read what feedparser reads, and warn that the feed is ill-formed."""
    path = FEEDS / "edgecases/feedparser/illformed/chardet" / filename
    (pd,) = read_document(raw_from_bytes(path.read_bytes(), origin=str(path), media="feed", received=NOW))
    assert [e.title for e in pd.entries] == _feedparser_titles(path)
    assert pd.warnings and "not well-formed" in pd.warnings[0]


@pytest.mark.xfail(
    not _chardet_available(),
    reason="without a charset detector (chardet is not a dependency) feedparser falls back to windows-1252 "
    "for a document that declares nothing and is not UTF-8; feedparser's own tests skip these unless chardet is there",
    strict=True,
)
@pytest.mark.parametrize("filename", sorted(CHARDET_TITLES))
def test_undeclared_legacy_encodings_decode_to_the_right_text(filename: str) -> None:
    path = FEEDS / "edgecases/feedparser/illformed/chardet" / filename
    raw = path.read_bytes()
    m = re.search(rb"<title>(.*?)</title>", raw, re.S)
    assert m
    truth = " ".join(m.group(1).decode(CHARDET_TITLES[filename]).split())
    (pd,) = read_document(raw_from_bytes(raw, origin=str(path), media="feed", received=NOW))
    assert pd.entries[0].title == truth


# --- updates and dedup -------------------------------------------------------


def test_successive_snapshots_of_one_feed_update_one_item(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, paths=[]))
    bodies = []
    with Store(tmp_path / "snapshots.db") as store:
        for n in (1, 2, 3):
            path = FEEDS / f"realworld/nodejs-vulnerability-reports.{n}.rss20.xml"
            result = ingest_paths(store, config, [path], NOW)
            assert not result.problems
            assert result.counts.get("new" if n == 1 else "updated") == 1, (n, result.counts)
            (item,) = store.items()
            bodies.append(item.body)
        assert store.db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 1
    assert "6-February-2020" not in bodies[0] and "6-February-2020" in bodies[1]
    assert "19-May-2020" not in bodies[1] and "19-May-2020" in bodies[2]


def test_one_json_feed_serialized_two_ways_dedupes_completely(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, paths=[]))
    with Store(tmp_path / "inessential.db") as store:
        first = ingest_paths(store, config, [FEEDS / "realworld/inessential.jsonfeed.json"], NOW)
        assert first.counts.get("new") == 20 and not first.problems
        second = ingest_paths(store, config, [FEEDS / "realworld/inessential.feedjira.jsonfeed.json"], NOW)
        assert items_read(second.counts) == 20 and not second.problems
        assert second.counts.get("new", 0) == 0, second.counts
        assert store.db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 20


# --- e-mails -----------------------------------------------------------------


def _read_email(path: Path, media: str = "email") -> Any:
    return read_document(raw_from_bytes(path.read_bytes(), origin=str(path), media=media, received=NOW))


def _read_and_normalize(path: str, media: str) -> dict[str, Any]:
    """One e-mail or page read and normalized, or why not: plain data a worker can hand back."""
    out: dict[str, Any] = {"file": path, "refused": None, "error": None}
    try:
        (pd,) = _read_email(Path(path), media)
        (entry,) = pd.entries
        item = normalize_entry(entry, source_id="s", raw_id=None, base_url=None)
        out.update(title=item.title, raw_title=entry.title, content_type=entry.content_type, body=item.body)
    except ReadError as exc:
        out["refused"] = str(exc)
    except BaseException:  # noqa: BLE001 - recorded, and the test fails on it
        out["error"] = traceback.format_exc()
    return out


def _read_many(paths: list[str], media: str) -> list[dict[str, Any]]:
    return [_read_and_normalize(p, media) for p in paths]


def read_all(paths: list[Path], media: str) -> dict[Path, dict[str, Any]]:
    """Read and normalize many files in two worker processes."""
    chunks = [[str(p) for p in paths[i::8]] for i in range(8)]
    results = [r for chunk in in_parallel(_read_many, [(c, media) for c in chunks if c]) for r in chunk]
    assert len(results) == len(paths)
    return {Path(r["file"]): r for r in results}


@pytest.fixture(scope="module")
def emails() -> dict[Path, dict[str, Any]]:
    files = sorted(EMAILS.rglob("*.eml"))
    assert len(files) >= 38
    return read_all(files, "email")


def _subject_matches(ours: str, theirs: str) -> bool:
    """Our title against the manifest's subject, both whitespace-normalized.

    The manifest was decoded with the email package's compat32 policy, which turns
    raw 8-bit UTF-8 headers (RFC 6532) into U+FFFD; there a run of U+FFFD stands
    for the non-ASCII letters we decode properly.
    """
    theirs = " ".join(theirs.split())
    if "\ufffd" not in theirs:
        return ours == theirs
    pattern = "".join("[^\\x00-\\x7f]+" if part.startswith("\ufffd") else re.escape(part)
                      for part in re.split("(\ufffd+)", theirs) if part)
    return re.fullmatch(pattern, ours) is not None


def test_every_email_is_read_with_its_subject_as_the_title(emails: dict[Path, dict[str, Any]]) -> None:
    rows = manifest(EMAILS)
    crashed = {p.name: r["error"] for p, r in emails.items() if r["error"]}
    assert not crashed, crashed
    refused, checked = [], 0
    for path, r in emails.items():
        name = rel(path, EMAILS)
        if r["refused"] is not None:
            assert r["refused"].strip(), name  # a ReadError that says why
            refused.append(f"{name}: {r['refused']}")
            continue
        assert "\ufffd" not in r["title"], (name, r["title"])
        subject = rows.get(name, {}).get("subject", "")
        if subject.strip():
            checked += 1
            assert _subject_matches(r["title"], subject), (name, r["title"], subject)
    print(f"\n{len(emails)} e-mails, {checked} subjects compared, refused: {refused or 'none'}")
    assert checked >= 35


def test_newsletter_bodies_are_decoded_html_without_qp_artifacts_or_mojibake(
    emails: dict[Path, dict[str, Any]],
) -> None:
    newsletters = {p: r for p, r in emails.items() if p.parent.name == "newsletters"}
    assert len(newsletters) == 16
    for path, r in newsletters.items():
        assert r["content_type"] == "html", path.name  # every one has a text/html part
        body = r["body"]
        assert len(body) > 200, path.name
        for artifact in ("=3D", "=\n", "=20\n", "Ã¼", "Ã¤", "Ã¶", "Ã\u009f", "\ufffd"):
            assert artifact not in body, (path.name, artifact)
        assert not MOJIBAKE.search(body), (path.name, MOJIBAKE.search(body))
    # The WWF mail is ISO-8859-1 quoted-printable with a UTF-8 <meta> (the MIME charset
    # must win) and writes its umlauts as entities; both must end up as letters.
    assert "Ein kurzer Überblick über unsere Arbeit" in emails[EMAILS / "newsletters/2023-01-04_wwf_optimizely.u1.eml"]["body"]


def test_mbox_files_split_into_the_manifest_message_count() -> None:
    rows = manifest(EMAILS)
    files = sorted((EMAILS / "mbox").glob("*.mbox"))
    assert files
    for path in files:
        expected = int(rows[rel(path, EMAILS)]["messages"])
        assert len(split_mbox(path.read_bytes())) == expected, path.name
        assert len(_read_email(path, media="mbox")) == expected, path.name


def test_an_outlook_boundary_with_an_equals_sign_still_splits_the_parts(emails: dict[Path, dict[str, Any]]) -> None:
    # boundary=----=_NextPart_000_0093_01C81419.EB75E850, unquoted: a strict reading stops at "="
    r = emails[EMAILS / "charsets/mime_emails__raw_email_with_illegal_boundary.eml"]
    assert r["content_type"] == "html"  # the HTML alternative was found and preferred
    assert "This is an outlook test" in " ".join(r["body"].split())
    assert "=3D" not in r["body"] and "NextPart" not in r["body"] and "Content-Type" not in r["body"]


# --- HTML pages ----------------------------------------------------------------


def test_readability_pages_are_read_with_a_title() -> None:
    pages = sorted(p for p in (HTML / "readability").iterdir() if (p / "source.html").is_file())
    assert len(pages) >= 30
    results = read_all([p / "source.html" for p in pages], "html")
    crashed = {p.parent.name: r["error"] or r["refused"] for p, r in results.items() if r["error"] or r["refused"]}
    assert not crashed, crashed
    untitled, wrong = [], []
    for page in pages:
        r = results[page / "source.html"]
        assert r["body"].strip(), page.name
        if not (r["raw_title"] or "").strip():
            untitled.append(page.name)
            continue
        expected = json.loads((page / "expected-metadata.json").read_text(encoding="utf-8")).get("title") or ""
        if expected and " ".join(expected.split()) not in r["title"]:
            wrong.append(f"{page.name}: {r['title']!r} (Readability: {expected!r})")
    print(f"\n{len(pages)} pages; untitled: {untitled or 'none'}")
    print("titles that do not contain Readability's:\n  " + "\n  ".join(wrong or ["none"]))
    assert len(pages) - len(untitled) >= 0.9 * len(pages), untitled
    # Readability trims site names ("- BBC News") and picks headings; ours is the
    # page's og:title or <title>, so we only require it to hold Readability's for most.
    assert len(wrong) <= 0.2 * len(pages), wrong


# --- roundups ----------------------------------------------------------------


def test_real_feeds_are_rarely_split_and_never_when_a_post_is_one_article(sweep: dict[str, dict[str, Any]]) -> None:
    """Real posts are nearly all single stories: few are split into stories, and known single
    articles never are, while a real links roundup is."""
    posts = split = 0
    stories_of: dict[str, int] = {}
    for name, r in sweep.items():
        if not name.startswith("realworld/") or not items_read(r["counts"]):
            continue
        with Store(r["store"]) as store:
            for title, children in store.db.execute(
                "SELECT title, (SELECT COUNT(*) FROM items c WHERE c.parent_id = i.id) FROM items i "
                "WHERE parent_id IS NULL"
            ):
                posts += 1
                split += bool(children)
                stories_of[title] = children
    print(f"\n{split} of {posts} real posts split into stories")
    assert posts > 3000
    assert split <= 0.02 * posts
    singles = ["Tails 4.14 is out", "why client-side environment variables are a bad idea",
               "Migrating from Ghost to Hugo", "Underpant-Free Excitement"]
    assert {t: stories_of.get(t) for t in singles} == {t: 0 for t in singles}
    assert stories_of.get("Web Review, Week 2025-12", 0) >= 10
