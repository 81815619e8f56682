"""Readers and normalize on the bundled seeds, on small crafted inputs, and unit by unit.

The truth for the seeds is tests/data/seed_expectations.json, written for them:
exact titles and UTC publish times, and the ids and URLs copied from the files.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.ingest import ingest_paths, raw_from_bytes
from pipeline.models import Entry, ParsedDocument
from pipeline.normalize import (
    EmptyEntry,
    canonical_url,
    clean_text_line,
    content_hash,
    html_to_markdown,
    normalize_entry,
    to_markdown,
)
from pipeline.readers import (
    ReadError,
    detect_media,
    parse_message,
    parse_when,
    read_document,
    split_front_matter,
    split_mbox,
)
from pipeline.store import Store

from .conftest import ROOT, SEEDS, write_config

NOW = datetime(2026, 4, 12, 12, 0, tzinfo=timezone.utc)
EXPECTATIONS = json.loads((ROOT / "tests/data/seed_expectations.json").read_text(encoding="utf-8"))["items"]
SEED_FILES = sorted({e["file"] for e in EXPECTATIONS})


def read_path(path: Path, media: str | None = None) -> tuple[ParsedDocument, ...]:
    payload = path.read_bytes()
    media = media or detect_media(path, payload[:1024])
    assert media, f"{path.name}: media not recognized"
    return read_document(raw_from_bytes(payload, origin=str(path), media=media, received=NOW))


def read_bytes(payload: bytes, name: str, media: str | None = None) -> tuple[ParsedDocument, ...]:
    media = media or detect_media(Path(name), payload[:1024])
    assert media, f"{name}: media not recognized"
    return read_document(raw_from_bytes(payload, origin=name, media=media, received=NOW))


def normalized(entry: Entry):  # noqa: ANN201 - an Item
    return normalize_entry(entry, source_id="seed", raw_id=None, base_url=None)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def seed_entries() -> dict[str, list[Entry]]:
    return {f: [e for pd in read_path(ROOT / f) for e in pd.entries] for f in SEED_FILES}


# --- the seeds -----------------------------------------------------------------


def test_the_expectations_cover_every_seed_file() -> None:
    on_disk = sorted(
        p.relative_to(ROOT).as_posix()
        for folder in ("feeds", "emails", "articles")
        for p in (SEEDS / folder).iterdir()
        if p.is_file()
    )
    assert on_disk == SEED_FILES


@pytest.mark.parametrize("path", SEED_FILES)
def test_every_seed_item_is_read_with_its_exact_title_and_utc_time(
    seed_entries: dict[str, list[Entry]], path: str
) -> None:
    expected = [e for e in EXPECTATIONS if e["file"] == path]
    entries = seed_entries[path]
    assert len(entries) == len(expected), [e.title for e in entries]
    by_title = {normalized(e).title: e for e in entries}
    for want in expected:
        entry = by_title.get(want["title"])
        assert entry is not None, f"no item titled {want['title']!r} in {path}: {sorted(by_title)}"
        item = normalized(entry)
        assert item.published == utc(want["published_utc"]), want["title"]
        assert item.published.utcoffset() == timedelta(0)
        # ids and URLs are verbatim in the expectations; the item's URL is canonical
        assert entry.guid == want["id"].strip("<>"), want["title"]
        assert item.url == canonical_url(want["url"]), want["title"]
        if want.get("author"):
            assert item.author == want["author"], want["title"]


def test_dates_in_many_offsets_land_on_the_right_utc_day(seed_entries: dict[str, list[Entry]]) -> None:
    items = {normalized(e).title: normalized(e) for f in SEED_FILES for e in seed_entries[f]}
    # dated 8 April at -0500 in the feed; 9 April in UTC
    cerebras = items["OpenAI's Cerebras deal is a bet on inference, and open-model hosts should pay attention"]
    assert cerebras.published == datetime(2026, 4, 9, 2, 45, tzinfo=timezone.utc)
    # dated 11 April local time; 12 April in UTC
    analysis = next(i for t, i in items.items() if t.startswith("Analysis: Why Anthropic v. Department of War"))
    assert analysis.published.date().isoformat() == "2026-04-12"


def test_tracking_parameters_fragment_and_default_port_are_dropped(seed_entries: dict[str, list[Entry]]) -> None:
    urls = {normalized(e).url for f in SEED_FILES for e in seed_entries[f]}
    assert "https://weightsledger.example/p/mythos-open-weights-panic" in urls
    assert "https://frontierwire.example/2026/04/08/openai-cerebras-deal" in urls
    assert not [u for u in urls if u and ("utm_" in u or "#" in u or ":443" in u or "ref=" in u)]


def test_the_email_html_part_is_preferred_and_decoded_with_non_ascii_intact() -> None:
    (pd,) = read_path(SEEDS / "emails/compute-brief-2026-04-09.eml")
    (entry,) = pd.entries
    assert entry.content_type == "html"  # multipart/alternative: the HTML part, not the plain one
    assert "<h2>" in entry.content
    item = normalized(entry)
    body = item.body
    for text in ("OpenAI’s $20bn-plus Cerebras order", "déjà vu", "Issue #118", "·"):
        assert text in body, text
    for artifact in ("=3D", "=C3", "=E2", "=\n", "Ã", "\ufffd"):
        assert artifact not in body, artifact
    assert "open.gif" not in body  # the 1x1 tracking pixel
    assert "](https://computebrief.example/r/118-1" in body  # links are kept
    assert item.url == "https://computebrief.example/issues/2026-04-09"  # "View in browser", canonical
    assert pd.hint.list_id == "weekly.computebrief.example"
    assert pd.hint.email == "brief@computebrief.example"


def test_a_base64_html_email_with_an_encoded_subject() -> None:
    (pd,) = read_path(SEEDS / "emails/policy-memo-2026-04-11.eml")
    (entry,) = pd.entries
    assert entry.content_type == "html"
    # RFC 2047 em dash, and a folded header, in the subject
    assert entry.title == "Policy Memo — Fable goes dark; the open-weights stakes in Anthropic v. Department of War"
    body = normalized(entry).body
    assert "—" in body and "Claude Fable 5" in body
    assert "PCFET0NUWVBF" not in body  # no base64 left
    assert normalized(entry).url == "https://policymemo.example/issues/2026-04-11"  # "Read this issue on the web"


def test_the_html_article_keeps_the_article_and_drops_page_chrome() -> None:
    (pd,) = read_path(SEEDS / "articles/nomad-inference-advisory.html")
    (entry,) = pd.entries
    item = normalized(entry)
    body = item.body
    assert "Upgrade to **Nomad Inference Server 3.8.2**" in body
    assert "| Advisory ID | NIS-2026-004 |" in body  # a real data table stays a table
    assert "pip install --upgrade" in body
    for chrome in ("Download", "Source code", "Privacy", "Code of conduct", "Apache License", "nomadAnalytics",
                   "DOMContentLoaded", "Advisories feed"):
        assert chrome not in body, chrome
    assert not body.startswith("# NIS-2026-004")  # the heading that repeats the title
    assert item.title.startswith("NIS-2026-004: Remote code execution")
    assert item.url == "https://nomadinference.example/security/advisories/nis-2026-004"
    assert item.author == "Nomad Inference Security Team"
    assert item.published == datetime(2026, 4, 8, 16, 0, tzinfo=timezone.utc)
    assert pd.hint.name == "Nomad Inference"


@pytest.mark.parametrize(
    ("path", "title", "first_words"),
    [
        ("articles/open-model-consortium.md", "Op-ed: Open models need a consortium before they need another champion",
         "Every few months"),
        ("articles/fable-export-controls.txt",
         "Fable goes dark: what the Commerce order tells anyone renting frontier AI", "An export control aimed"),
    ],
)
def test_front_matter_gives_title_url_author_and_time(path: str, title: str, first_words: str) -> None:
    (pd,) = read_path(SEEDS / path)
    (entry,) = pd.entries
    want = next(e for e in EXPECTATIONS if e["file"] == f"seeds/{path}")
    assert entry.title == title == want["title"]
    assert entry.url == want["url"]
    assert entry.author == want["author"]
    assert entry.published == utc(want["published_utc"])
    assert entry.content.startswith(first_words)  # the front matter is not part of the text
    assert "---" not in entry.content.splitlines()[0]
    assert pd.hint.name == want["source"]


def test_the_whole_seed_folder_ingests_without_problems(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    with Store(tmp_path / "seeds.db") as store:
        result = ingest_paths(store, config, [SEEDS / "feeds", SEEDS / "emails", SEEDS / "articles"], NOW)
        assert not result.problems, result.problems
        assert result.counts.get("new") == len(EXPECTATIONS)
        again = ingest_paths(store, config, [SEEDS], NOW)
        assert again.counts.get("new", 0) == 0 and not again.problems


# --- crafted bad inputs --------------------------------------------------------


def test_broken_xml_is_refused_with_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.xml"
    path.write_bytes(b'<?xml version="1.0"?>\n<rss version="2.0">\n<channel>\n<<<>>>\n')
    with pytest.raises(ReadError, match=r"line 4, column 2: not well-formed"):  # the second "<"
        read_path(path)


def test_an_ill_formed_feed_that_can_be_read_whole_is_read_with_a_warning_naming_the_place(tmp_path: Path) -> None:
    path = tmp_path / "amp.rss"
    path.write_bytes(
        b'<?xml version="1.0"?>\n<rss version="2.0"><channel><title>T</title>\n'
        b"<item><title>Tom & Jerry</title><link>https://e.example/1</link></item>\n"
        b"<item><title>Second</title><link>https://e.example/2</link></item>\n</channel></rss>\n"
    )
    (pd,) = read_path(path)
    assert [e.title for e in pd.entries] == ["Tom & Jerry", "Second"]
    assert "line 3, column 19" in pd.warnings[0]  # the character after the bare "&"


def test_an_ill_formed_feed_that_loses_entries_is_refused_not_half_read(tmp_path: Path) -> None:
    path = tmp_path / "prefixed.xml"
    path.write_bytes(
        b'<?xml?xml version="1.0"?>\n<rss rss:version=2.0><rss:channel><rss:title>T</rss:title>\n'
        b"<rss:item><rss:title>A</rss:title></rss:item>\n<rss:item><rss:title>B</rss:title></rss:item>\n"
        b"</rss:channel></rss>\n"
    )
    with pytest.raises(ReadError, match="only 0 of 2 entries"):
        read_path(path)


def test_json_that_is_not_a_json_feed_is_refused_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text('{"title": "not a feed", "items": [{"id": "1"}]}', encoding="utf-8")
    with pytest.raises(ReadError, match="not a JSON Feed"):
        read_path(path)
    path.write_text('{"version": "https://jsonfeed.org/version/1.1", "items": [', encoding="utf-8")
    with pytest.raises(ReadError, match=r"not valid JSON: line 1, column \d+"):
        read_path(path)


def test_json_feed_fields_of_the_wrong_type_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "odd.json"
    path.write_text(
        json.dumps({
            "version": "https://jsonfeed.org/version/1.1",
            "title": ["not a string"],
            "home_page_url": {"not": "a string"},
            "items": [
                {"id": 3.5, "title": "Float id", "url": 12, "content_html": True, "content_text": "text",
                 "tags": ["a", 1], "authors": "nobody"},
                {"id": "x", "title": 1000, "summary": "only a summary", "authors": [{"name": []}, {"name": "Jane"}]},
            ],
        }),
        encoding="utf-8",
    )
    (pd,) = read_path(path)
    first, second = pd.entries
    assert (first.guid, first.title, first.url, first.content, first.categories) == ("3.5", "Float id", None, "text", ("a",))
    assert (second.guid, second.title, second.content, second.author) == ("x", None, "only a summary", "Jane")
    assert pd.hint.name is None and pd.hint.site_url is None


def test_an_empty_text_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("\n\n  \n", encoding="utf-8")
    with pytest.raises(ReadError, match="empty"):
        read_path(path)


def test_an_unknown_binary_file_is_not_recognized(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 4)
    assert detect_media(path, path.read_bytes()[:1024]) is None
    config = load_config(write_config(tmp_path, paths=[]))
    with Store(tmp_path / "x.db") as store:
        result = ingest_paths(store, config, [path], NOW)
    assert result.counts == {"failed": 1}
    (problem,) = result.problems
    assert "unrecognized file type" in problem.message and problem.where.endswith("blob.bin")
    # binary bytes behind a text suffix are refused by the reader instead
    text = tmp_path / "blob.txt"
    text.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(ReadError, match="binary"):
        read_path(text)


def test_an_opml_file_offered_as_a_feed_says_what_it_is() -> None:
    with pytest.raises(ReadError, match="OPML subscription list"):
        read_path(SEEDS / "subscriptions.opml", media="feed")


def test_an_empty_feed_document_is_refused_but_a_titled_feed_without_entries_is_not(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="empty feed"):
        read_bytes(b'<?xml version="1.0"?>\n<rss version="2.0"></rss>\n', "empty.rss")
    (pd,) = read_bytes(b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>', "quiet.rss")
    assert pd.entries == () and pd.hint.name == "Quiet"


def test_entries_without_ids_that_share_one_link_stay_distinct() -> None:
    """A news page feed: no guids, every item links to the same page."""
    feed = (
        b'<rss version="2.0"><channel><title>News</title><link>https://n.example/</link>'
        b"<item><title>Release 1</title><link>https://n.example/news</link><pubDate>Mon, 06 Apr 2026 10:00:00 GMT</pubDate></item>"
        b"<item><title>Release 2</title><link>https://n.example/news</link><pubDate>Tue, 07 Apr 2026 10:00:00 GMT</pubDate></item>"
        b"<item><title>Release 2</title><link>https://n.example/news</link><pubDate>Tue, 07 Apr 2026 18:00:00 GMT</pubDate></item>"
        b"<item><title>Other</title><link>https://n.example/other</link></item>"
        b"</channel></rss>"
    )
    (pd,) = read_bytes(feed, "news.rss")
    guids = [e.guid for e in pd.entries]
    assert guids[0] != guids[1]  # two releases: two items
    assert guids[1] == guids[2]  # the same post listed twice on one day: one item
    assert guids[3] == "https://n.example/other"  # a link of its own is the id
    (again,) = read_bytes(feed, "news.rss")
    assert [e.guid for e in again.entries] == guids  # stable from one read to the next


def test_a_plain_text_title_keeps_its_angle_brackets() -> None:
    feed = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>'
        b'<entry><id>1</id><title type="text">History of the &lt;blink&gt; tag</title></entry>'
        b'<entry><id>2</id><title type="html">&lt;b&gt;Bold&lt;/b&gt; &amp;amp; more</title></entry></feed>'
    )
    (pd,) = read_bytes(feed, "t.atom")
    assert [normalized(e).title for e in pd.entries] == ["History of the <blink> tag", "Bold & more"]


def test_an_outlook_style_unquoted_boundary_still_splits_the_message() -> None:
    message = (
        b"From: A <a@example.com>\r\nSubject: Parts\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/alternative; boundary=----=_NextPart_000_0001\r\n\r\n"
        b"------=_NextPart_000_0001\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nPlain caf=E9\r\n"
        b"------=_NextPart_000_0001\r\nContent-Type: text/html; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>HTML caf=E9</p>\r\n"
        b"------=_NextPart_000_0001--\r\n"
    )
    (entry,) = parse_message(message).entries
    assert entry.content_type == "html"
    assert entry.content.strip() == "<p>HTML café</p>"


def test_a_mislabelled_charset_falls_back_instead_of_replacing_characters() -> None:
    message = (
        b"From: a@example.com\r\nSubject: Labels\r\nContent-Type: text/plain; charset=us-ascii\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe und Dank\r\n"
    )
    (entry,) = parse_message(message).entries
    assert entry.content.strip() == "Grüße und Dank"


def test_mbox_splitting_and_from_unquoting() -> None:
    mbox = (
        b"From a@example.com Mon Apr  6 10:00:00 2026\nSubject: One\n\nHello\n>From the start\n\n"
        b"From b@example.com Tue Apr  7 10:00:00 2026\nSubject: Two\n\nBye\n"
    )
    messages = split_mbox(mbox)
    assert len(messages) == 2
    assert b"\nFrom the start" in messages[0]
    assert [pd.entries[0].title for pd in read_bytes(mbox, "box.mbox")] == ["One", "Two"]


# --- normalize -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Example.COM:443/a/b?utm_source=x&id=5&fbclid=y&ref=home#frag", "https://example.com/a/b?id=5"),
        ("http://example.com:80", "http://example.com/"),
        ("http://example.com:8080/x?b=2&a=1", "http://example.com:8080/x?b=2&a=1"),
        ("https://e.example/p?utm_medium=feed&utm_campaign=c&gclid=1&mc_eid=2", "https://e.example/p"),
        ("https://e.example/p?page=2&q=a+b#comments", "https://e.example/p?page=2&q=a+b"),
        ("https://e.example/p?referrer=x&reference=y", "https://e.example/p?reference=y"),
        ("/relative/path?utm_source=x", None),
        ("mailto:someone@example.com", None),
        ("ftp://example.com/file", None),
        ("javascript:alert(1)", None),
        ("", None),
        (None, None),
    ],
)
def test_canonical_url(url: str | None, expected: str | None) -> None:
    assert canonical_url(url) == expected


def test_canonical_url_resolves_against_a_base() -> None:
    assert canonical_url("/post/1?utm_source=x", "https://blog.example/") == "https://blog.example/post/1"


def test_html_to_markdown_drops_scripts_styles_and_tracking_pixels_and_keeps_links() -> None:
    md = html_to_markdown(
        "<style>p{color:red}</style><script>track()</script><noscript>enable js</noscript>"
        '<p>Read <a href="https://e.example/a">the post</a>.</p>'
        '<img src="https://t.example/open.gif" width="1" height="1">'
        '<img src="https://t.example/pixel.png" style="width:1px;height:1px">'
        '<img src="https://e.example/chart.png" alt="Chart" width="600">'
        '<span style="display:none">hidden preheader</span>'
    )
    assert "[the post](https://e.example/a)" in md
    assert "![Chart](https://e.example/chart.png)" in md
    for gone in ("color:red", "track()", "enable js", "open.gif", "pixel.png", "hidden preheader"):
        assert gone not in md, gone


def test_html_to_markdown_unwraps_layout_tables_and_keeps_data_tables() -> None:
    layout = (
        '<table role="presentation"><tr><td><table><tr><td><p>First paragraph.</p></td></tr></table></td></tr>'
        "<tr><td><p>Second paragraph.</p></td></tr></table>"
    )
    md = html_to_markdown(layout)
    assert md == "First paragraph.\n\nSecond paragraph."
    data = "<table><tr><th>Version</th><th>Fixed</th></tr><tr><td>3.8.1</td><td>no</td></tr></table>"
    assert "| Version | Fixed |" in html_to_markdown(data)


def test_html_to_markdown_drops_invisible_padding_and_markup_declarations() -> None:
    md = html_to_markdown(
        "<p>&shy;</p><p>&zwnj;&nbsp;&shy;</p><![if !mso]><p>Hello wo&shy;rld 👨‍👩</p><![endif]>"
        "<?php echo 1 ?><html><head><title>Page title</title></head></html>"
    )
    assert md == "Hello world 👨‍👩"  # the joiner inside an emoji stays


def test_html_to_markdown_without_markup_decodes_entities_only() -> None:
    # as markdownify would: entities decoded, a line break kept, runs of spaces collapsed
    assert html_to_markdown("Tom &amp; Jerry\n  and   friends") == "Tom & Jerry\nand friends"
    assert to_markdown("line one\n\n\n\nline two  ", "text") == "line one\n\nline two"


def test_content_hash_ignores_whitespace_and_case() -> None:
    h = content_hash("A Title", "Some body\ntext.")
    assert content_hash("  a   title ", "some BODY text.  ") == h
    assert content_hash("A Title", "Some other text.") != h


def test_normalize_entry_converts_times_to_utc_and_cleans_fields() -> None:
    entry = Entry(
        guid=" g-1 ",
        url="https://e.example/p?utm_source=rss#top",
        title="  Tom &amp; Jerry\u200b\n",
        author=" Ann ",
        published=datetime(2026, 4, 8, 21, 45, tzinfo=timezone(timedelta(hours=-5))),
        content="<p>Body</p>",
        content_type="html",
        categories=("ai", " ai ", ""),
    )
    item = normalize_entry(entry, source_id="src", raw_id="r", base_url=None)
    assert item.published == datetime(2026, 4, 9, 2, 45, tzinfo=timezone.utc)
    assert item.published.tzinfo == timezone.utc
    assert (item.title, item.author, item.url, item.guid, item.body) == (
        "Tom & Jerry", "Ann", "https://e.example/p", "g-1", "Body"
    )
    assert item.categories == ("ai",)
    naive = normalize_entry(
        Entry(guid="g", url=None, title="T", author=None, published=datetime(2026, 4, 8, 12, 0), content="", content_type="text"),
        source_id="src", raw_id=None, base_url=None,
    )
    assert naive.published == datetime(2026, 4, 8, 12, 0, tzinfo=timezone.utc)


def test_normalize_entry_refuses_an_entry_with_neither_title_nor_text() -> None:
    empty = Entry(guid="g", url="https://e.example/", title=" ", author=None, published=None,
                  content="<p> </p>", content_type="html")
    with pytest.raises(EmptyEntry):
        normalize_entry(empty, source_id="src", raw_id=None, base_url=None)


def test_an_entry_without_a_title_takes_its_first_sentence() -> None:
    entry = Entry(guid="g", url=None, title=None, author=None, published=None,
                  content="<p>First sentence here. Second one.</p>", content_type="html")
    assert normalize_entry(entry, source_id="s", raw_id=None, base_url=None).title == "First sentence here."


def test_clean_text_line() -> None:
    assert clean_text_line("a\x00b\u200bc\n\td &eacute;") == "a b c d é"
    assert clean_text_line(None) == ""


# --- dates and small helpers ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-04-07T09:30:00-04:00", datetime(2026, 4, 7, 13, 30, tzinfo=timezone.utc)),
        ("Thu, 09 Apr 2026 07:30:00 -0400", datetime(2026, 4, 9, 11, 30, tzinfo=timezone.utc)),
        ("Tue,19 Feb 2019 14:08:19 GMT", datetime(2019, 2, 19, 14, 8, 19, tzinfo=timezone.utc)),
        ("2026-04-10T09:15:00+05:30", datetime(2026, 4, 10, 3, 45, tzinfo=timezone.utc)),
        ("2026-04-10 09:15", datetime(2026, 4, 10, 9, 15, tzinfo=timezone.utc)),  # no zone: UTC
        ("Tue, 31 Feb 2019 10:00:00 GMT", None),
        ("yesterday-ish", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_when(value: str | None, expected: datetime | None) -> None:
    assert parse_when(value) == expected


def test_split_front_matter() -> None:
    meta, body = split_front_matter("---\ntitle: A: B\nURL: 'https://e.example'\n# note: skipped\n---\nText\n")
    assert meta == {"title": "A: B", "url": "https://e.example"}
    assert body == "Text\n"
    assert split_front_matter("No front matter\n---\n") == ({}, "No front matter\n---\n")


def test_detect_media() -> None:
    assert detect_media(Path("a.RSS"), b"") == "feed"
    assert detect_media(Path("noext"), b"\xef\xbb\xbf<?xml version='1.0'?><rss>") == "feed"
    assert detect_media(Path("noext"), b"From a@b Mon Apr  6 10:00:00 2026\n") == "mbox"
    assert detect_media(Path("noext"), b"Subject: hi\nFrom: a@b\n\nbody") == "email"
    assert detect_media(Path("noext"), b"<!DOCTYPE html><html>") == "html"
    assert detect_media(Path("noext"), b"just words") is None
