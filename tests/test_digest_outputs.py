"""Digest outputs from the seeds: golden files of every format, periods, empty periods, re-runs, feeds."""

from __future__ import annotations

import email
import http.server
import re
import threading
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from email import policy
from functools import partial
from pathlib import Path

import feedparser
import pytest
from bs4 import BeautifulSoup

from pipeline.atom import FULL_CONTENT_ENTRIES, digest_feed
from pipeline.digest import digest_step, parse_period_key, period_at, period_window
from pipeline.pages import site_info
from pipeline.render import SiteInfo
from pipeline.store import Store
from pipeline.store_digests import DigestEntry

from .conftest import ROOT, run_cli
from .digest_helpers import NOW, SITE_URL, digest_settings, load, seeded_store, snapshot

GOLDEN = ROOT / "tests" / "golden" / "site"
ATOM = "{http://www.w3.org/2005/Atom}"
SETTINGS = {"site_url": f'"{SITE_URL}"'}
EMAIL = {"to": '["reader@example.org"]', "sender": '"digest@example.org"'}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The seeds through every stage, then the daily and the weekly digest, with a site URL and a recipient."""
    tmp = tmp_path_factory.mktemp("site")
    config = load(digest_settings(tmp, SETTINGS, EMAIL))
    with seeded_store(config) as store:
        result = digest_step(store, config, NOW)
        digest_step(store, config, NOW, period="weekly")
    return config, result


def _top_event_id(config) -> str:
    md = (config.digest.output_dir / "daily" / "2026-04-13.md").read_text()
    return re.search(r"\(\.\./events/(ev-[0-9a-f]+)\.md\)", md).group(1)


def _golden_pairs(config) -> list[tuple[Path, Path]]:
    out = config.digest.output_dir
    event = _top_event_id(config)
    pairs = [(out / "daily" / f"2026-04-13.{ext}", Path("daily") / f"2026-04-13.{ext}") for ext in ("md", "html", "txt", "eml")]
    pairs += [(out / "weekly" / f"2026-W16.{ext}", Path("weekly") / f"2026-W16.{ext}") for ext in ("md", "html", "txt")]
    pairs += [(out / "events" / f"{event}.{ext}", Path("events") / f"top-story.{ext}") for ext in ("md", "html")]
    pairs += [(out / "topics" / f"cybersecurity.{ext}", Path("topics") / f"cybersecurity.{ext}") for ext in ("md", "html", "xml")]
    pairs += [(out / name, Path(name)) for name in ("index.md", "index.html", "feed.xml")]
    return pairs


def test_every_format_matches_its_golden_file(site, update_goldens: bool):
    config, _ = site
    mismatched = []
    for produced, golden in _golden_pairs(config):
        data = produced.read_bytes()
        target = GOLDEN / golden
        if update_goldens:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if not target.exists() or target.read_bytes() != data:
            mismatched.append(str(golden))
    assert not mismatched, f"differ from tests/golden/site (pytest --update-goldens after an intended change): {mismatched}"


def test_the_email_is_multipart_alternative_with_inlined_css(site):
    config, _ = site
    msg = email.message_from_bytes((config.digest.output_dir / "daily" / "2026-04-13.eml").read_bytes(),
                                   policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["To"] == "reader@example.org" and "digest@example.org" in msg["From"]
    assert msg["Subject"].startswith("Data Points: ")
    text, html = (part.get_content() for part in msg.iter_parts())
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    soup = BeautifulSoup(html, "html.parser")
    h3 = soup.find("h3")
    assert "font-size" in h3["style"]  # the stylesheet went into style attributes
    # what stays in <style> is only the narrow-screen rules, for the clients that read media queries
    (kept,) = soup.find_all("style")
    assert kept.get_text().strip().startswith("@media") and ".story {" not in kept.get_text()
    # every story link is in both parts; event pages are linked with the site URL
    story_links = [a["href"] for a in soup.select("h3 a")]
    assert len(story_links) == 26
    for href in story_links:
        assert href in text
    assert f"{SITE_URL}events/" in html and f"{SITE_URL}events/" in text


def test_event_page_has_the_seed_event_page_shape(site):
    config, _ = site
    out = config.digest.output_dir
    pages = sorted((out / "events").glob("*.md"))
    with Store(config.store.path) as store:
        assert len(pages) == len(store.digested_event_ids()) >= 26  # the stories, and the roundups they came from
    with_related = 0
    for page in pages:
        text = page.read_text()
        lines = text.splitlines()
        assert lines[0].startswith("# ")
        # the event summary: kind, source and tier, then the other sources when there are any
        assert re.search(r"(An?|A) [\w -]+ from .+, a tier-[123] source\.( \w+ more sources? covered it, .+\.)?$",
                         lines[1]), lines[1]
        assert "(0)" not in text  # no empty sections
        related = [ln for ln in lines if ln.startswith("## Related events")]
        if not related:
            assert text.count("No related events.") == 1 and "### " not in text
            continue
        (heading,) = related
        count = int(re.fullmatch(r"## Related events \((\d+)\)", heading).group(1))
        after = lines[lines.index(heading) + 1 :]
        headings = [ln for ln in after if ln.startswith("### ")]
        assert count > 0 and len(headings) == count and "No related events" not in text
        for h in headings:  # each related event: headline, then its summary
            summary = after[after.index(h) + 1]
            assert "a tier-" in summary
        with_related += 1
        for target in re.findall(r"\]\((\.\./[^)]+)\)", text):
            assert (page.parent / target).resolve().exists(), target
    assert with_related >= 5


def test_topic_pages_and_index_link_everything(site):
    config, _ = site
    out = config.digest.output_dir
    index = (out / "index.html").read_text()
    soup = BeautifulSoup(index, "html.parser")
    hrefs = {a["href"] for a in soup.find_all("a")}
    assert "daily/2026-04-13.html" in hrefs and "feed.xml" in hrefs
    for topic in ("open-weight", "cybersecurity", "policy", "compute"):
        assert f"topics/{topic}.html" in hrefs and f"topics/{topic}.xml" in hrefs
    for href in hrefs:
        assert (out / href).exists(), href
    policy_md = (out / "topics" / "policy.md").read_text()
    assert policy_md.startswith("# Policy and government\n")
    assert policy_md.count("\n### [") >= 3


def test_running_the_same_digest_again_changes_no_file(site):
    config, _ = site
    out = config.digest.output_dir
    before = snapshot(out)
    with Store(config.store.path) as store:
        digest_step(store, config, NOW)
        digest_step(store, config, NOW + timedelta(hours=5))  # later the same day, nothing new
    assert snapshot(out) == before


# --- feeds ---------------------------------------------------------------------


def _check_atom(path: Path) -> ET.Element:
    """The RFC 4287 rules that matter for readers, checked on the XML itself."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{ATOM}feed"
    for parent in [root, *root.findall(f"{ATOM}entry")]:
        for name in ("id", "title", "updated"):
            assert len(parent.findall(f"{ATOM}{name}")) == 1, (parent.tag, name)
        updated = parent.find(f"{ATOM}updated").text
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", updated)
        assert parent.find(f"{ATOM}id").text.startswith("tag:")
        assert parent.find(f"{ATOM}title").text.strip()
        alternates = [ln for ln in parent.findall(f"{ATOM}link") if ln.get("rel") == "alternate"]
        assert len(alternates) == 1 and alternates[0].get("type") == "text/html"
        content = parent.find(f"{ATOM}content")
        if content is not None:
            assert content.get("type") == "html"
        elif parent is not root:
            assert parent.find(f"{ATOM}summary") is not None  # an entry without content has a summary
    assert root.find(f"{ATOM}author/{ATOM}name") is not None  # entries inherit the feed's author
    ids = [e.find(f"{ATOM}id").text for e in root.findall(f"{ATOM}entry")]
    assert len(ids) == len(set(ids))
    feed_updated = root.find(f"{ATOM}updated").text
    assert all(e.find(f"{ATOM}updated").text <= feed_updated for e in root.findall(f"{ATOM}entry"))
    return root


def test_feeds_are_valid_atom(site):
    config, _ = site
    out = config.digest.output_dir
    feeds = [out / "feed.xml", *sorted((out / "topics").glob("*.xml"))]
    assert len(feeds) >= 5
    for path in feeds:
        parsed = feedparser.parse(path.read_bytes())
        assert parsed.bozo == 0, (path, parsed.get("bozo_exception"))
        assert parsed.version == "atom10"
        root = _check_atom(path)
        self_link = [ln.get("href") for ln in root.findall(f"{ATOM}link") if ln.get("rel") == "self"]
        assert self_link == [SITE_URL + str(path.relative_to(out))]
        for entry in parsed.entries:
            assert entry.link.startswith(SITE_URL)
    digest_feed = feedparser.parse((out / "feed.xml").read_bytes())
    entries = {e.id: e for e in digest_feed.entries}
    assert set(entries) == {"tag:digests.example.org,2026:digest/daily/2026-04-13",
                            "tag:digests.example.org,2026:digest/weekly/2026-W16"}
    entry = entries["tag:digests.example.org,2026:digest/daily/2026-04-13"]
    assert entry.link == SITE_URL + "daily/2026-04-13.html"
    assert entry.content[0].type == "text/html" and "Introducing Meridian Open 2" in entry.content[0].value
    assert entry.updated_parsed[:5] == (2026, 4, 13, 6, 0)
    assert entries["tag:digests.example.org,2026:digest/weekly/2026-W16"].link == SITE_URL + "weekly/2026-W16.html"


def test_a_new_digest_adds_an_entry_and_keeps_the_old_ones_unchanged(tmp_path: Path):
    config = load(digest_settings(tmp_path, SETTINGS))
    with seeded_store(config) as store:
        digest_step(store, config, NOW)
        first = feedparser.parse((config.digest.output_dir / "feed.xml").read_bytes()).entries[0]
        later = NOW + timedelta(days=1)
        extra = tmp_path / "late.md"
        extra.write_text("# Late story about open-weight model licences\n\nA new open-weight model licence was "
                         "published today with terms that restrict commercial use for large companies.\n")
        from pipeline.cluster import cluster_step
        from pipeline.ingest import ingest_paths
        from pipeline.tag import tag_step

        ingest_paths(store, config, [extra], later)
        tag_step(store, config, later)
        cluster_step(store, config, later)
        digest_step(store, config, later)
    parsed = feedparser.parse((config.digest.output_dir / "feed.xml").read_bytes())
    assert parsed.bozo == 0 and len(parsed.entries) == 2
    newest, oldest = parsed.entries
    assert newest.id.endswith("daily/2026-04-14") and oldest.id == first.id
    assert oldest.updated == first.updated and newest.updated_parsed > oldest.updated_parsed
    assert parsed.feed.updated == newest.updated
    day2 = (config.digest.output_dir / "daily" / "2026-04-14.md").read_text()
    assert "Late story about open-weight model licences" in day2 and "Meridian Open 2" not in day2


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D401 - keep test output clean
        pass


@pytest.fixture
def served(site):
    config, _ = site
    handler = partial(_QuietHandler, directory=str(config.digest.output_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_feed_reader_subscribes_and_finds_every_digest(site, served, tmp_path: Path):
    """lemon24/reader, over HTTP, reads feed.xml and the topic feeds; every link resolves."""
    reader_mod = pytest.importorskip("reader")
    import httpx

    config, _ = site
    reader = reader_mod.make_reader(str(tmp_path / "reader.sqlite"))
    try:
        feeds = [served + "feed.xml"] + [served + f"topics/{p.name}" for p in (config.digest.output_dir / "topics").glob("*.xml")]
        for url in feeds:
            reader.add_feed(url)
        reader.update_feeds()
        for feed in reader.get_feeds():
            assert feed.last_exception is None, (feed.url, feed.last_exception)
        digests = list(reader.get_entries(feed=served + "feed.xml"))
        with Store(config.store.path) as store:
            recorded = {f"tag:digests.example.org,2026:digest/{d.period}/{d.date}" for d in store.digest_entries()}
        assert len(recorded) == 2  # the daily and the weekly digest
        assert {e.id for e in digests} == recorded
        for entry in digests:
            assert entry.title.startswith("Data Points: ") and entry.updated == NOW
            assert entry.link.startswith(SITE_URL) and entry.link.endswith((".html"))
        entry = digests[0]
        # the relative links are resolved by the reader; the pages exist on the site
        topic_entries = [e for e in reader.get_entries() if e.feed_url != served + "feed.xml"]
        assert len(topic_entries) >= 20
        with httpx.Client() as client:
            for link in {entry.link.replace(SITE_URL, served)} | {e.link.replace(SITE_URL, served) for e in topic_entries[:5]}:
                assert client.get(link).status_code == 200, link
    finally:
        reader.close()


# --- periods, catch-up, one-offs and empty periods ---------------------------------


def test_period_keys_and_windows_follow_the_time_zone_and_cut_off(tmp_path: Path):
    config = load(digest_settings(tmp_path, {"timezone": '"America/New_York"', "cutoff_hour": "6"}))
    cfg = config.digest
    # 09:00 UTC is 05:00 in New York: before the cut-off, so still the previous day's digest
    assert period_at("daily", datetime(2026, 4, 13, 9, 0, tzinfo=timezone.utc), cfg) == "2026-04-12"
    assert period_at("daily", datetime(2026, 4, 13, 10, 0, tzinfo=timezone.utc), cfg) == "2026-04-13"
    start, end = period_window("daily", "2026-04-13", cfg)
    assert (start, end) == (datetime(2026, 4, 13, 10, tzinfo=timezone.utc), datetime(2026, 4, 14, 10, tzinfo=timezone.utc))
    # Monday 13 April 2026 is in ISO week 16; Monday 05:00 local is still week 15
    assert period_at("weekly", datetime(2026, 4, 13, 9, 0, tzinfo=timezone.utc), cfg) == "2026-W15"
    start, end = period_window("weekly", "2026-W16", cfg)
    assert end - start == timedelta(days=7) and start.astimezone(cfg.tz).weekday() == 0
    assert parse_period_key("weekly", "2026-04-15") == "2026-W16"
    assert parse_period_key("weekly", "2026-W16") == "2026-W16"
    with pytest.raises(ValueError):
        parse_period_key("daily", "2026-13-40")


def test_weekly_digest_and_a_catch_up_of_a_missed_day(tmp_path: Path):
    config = load(digest_settings(tmp_path))
    out = config.digest.output_dir
    with seeded_store(config, NOW - timedelta(days=2)) as store:  # items first seen on 11 April
        result = digest_step(store, config, NOW, period="daily", date="2026-04-10")  # before any item arrived
        assert result.counts["written"] == 0 and not (out / "daily" / "2026-04-10.md").exists()
        digest_step(store, config, NOW, period="daily", date="2026-04-11")
        weekly = digest_step(store, config, NOW, period="weekly")
        assert weekly.paths == (str(out / "weekly" / "2026-W16.md"),)
        today = digest_step(store, config, NOW)  # everything went into the 11 April digest
        future = digest_step(store, config, NOW, period="daily", date="2026-05-01")
    assert today.counts["written"] == 0 and future.problems
    daily = (out / "daily" / "2026-04-11.md").read_text()
    assert "Daily digest, Saturday 11 April 2026" in daily and daily.count("\n### ") == 26
    week = (out / "weekly" / "2026-W16.md").read_text()
    assert "Weekly digest, week 2026-W16" in week and week.count("\n### ") == 26  # periods are independent
    assert sorted(p.name for p in (out / "weekly").iterdir()) == [f"2026-W16.{e}" for e in ("eml", "html", "md", "txt")]


def test_a_one_off_digest_between_two_times_through_the_command_line(tmp_path: Path):
    config_path = digest_settings(tmp_path)
    with seeded_store(load(config_path)):
        pass
    result = run_cli("--now", NOW.isoformat(), "digest", "--since", "2026-04-13T05:00:00Z", "--until",
                     "2026-04-13T07:00:00Z", config=config_path)
    assert result.code == 0, result.err
    path = tmp_path / "digests" / "range" / "20260413T0500Z-20260413T0700Z.md"
    assert str(path) in result.out
    assert path.read_text().count("\n### ") == 26
    bad = run_cli("digest", "--date", "yesterday", config=config_path)
    assert bad.code == 1 and "Error: --date" in bad.err
    usage = run_cli("digest", "--date", "2026-04-13", "--since", "2026-04-01", config=config_path)
    assert usage.code == 2


@pytest.mark.parametrize("nothing_new", [False, True])
def test_an_empty_period_sends_nothing_and_writes_a_note_only_when_asked(tmp_path: Path, nothing_new: bool,
                                                                          update_goldens: bool):
    config = load(digest_settings(tmp_path, {"nothing_new": str(nothing_new).lower(), **SETTINGS}))
    out = config.digest.output_dir
    with seeded_store(config) as store:
        digest_step(store, config, NOW)
        result = digest_step(store, config, NOW + timedelta(days=1))
        again = digest_step(store, config, NOW + timedelta(days=1, hours=1))
        entries = store.digest_entries()
    day2 = out / "daily" / "2026-04-14"
    assert not day2.with_suffix(".eml").exists()
    assert again.counts["written"] == 0
    if nothing_new:
        assert result.counts["written"] == 1 and result.counts["stories"] == 0
        text = day2.with_suffix(".md").read_text()
        assert text == "# Data Points: nothing new\n*Daily digest, Tuesday 14 April 2026.*\n"
        for ext in ("md", "html", "txt"):
            produced = day2.with_suffix(f".{ext}").read_text()
            assert produced.lower().count("nothing new") == (2 if ext == "html" else 1)  # html: <title> and <h1>
            assert "no new items" not in produced.lower()
            golden = GOLDEN.parent / "nothing-new" / f"2026-04-14.{ext}"
            if update_goldens:
                golden.parent.mkdir(parents=True, exist_ok=True)
                golden.write_text(produced, encoding="utf-8")
            assert produced == golden.read_text(encoding="utf-8"), f"{golden} (pytest --update-goldens)"
        assert [e.story_count for e in entries] == [0, 26]
        assert len(feedparser.parse((out / "feed.xml").read_bytes()).entries) == 2
    else:
        assert result.counts["written"] == 0 and not day2.with_suffix(".md").exists()
        assert len(entries) == 1


def test_run_writes_the_periods_named_in_config(tmp_path: Path):
    config_path = digest_settings(tmp_path, {"periods": '["daily", "weekly"]'})
    result = run_cli("--now", NOW.isoformat(), "run", config=config_path)
    assert result.code == 0, result.err
    daily = tmp_path / "digests" / "daily" / "2026-04-13.md"
    weekly = tmp_path / "digests" / "weekly" / "2026-W16.md"
    assert result.out.splitlines().count(str(daily)) == 1 and result.out.splitlines().count(str(weekly)) == 1
    assert daily.read_text().count("\n### ") == weekly.read_text().count("\n### ") == 26


def test_digest_and_email_settings_are_validated_with_dotted_keys(tmp_path: Path):
    from pipeline.config import ConfigError

    path = digest_settings(
        tmp_path,
        {"cutoff_hour": "24", "periods": '["daily", "monthly"]', "site_url": '"digests.example.org"',
         "nothing_new": '"yes"'},
        {"to": '["not-an-address"]', "security": '"tls"', "port": "0", "ca_file": '"missing.pem"', "colour": '"red"'},
    )
    with pytest.raises(ConfigError) as info:
        load(path)
    problems = info.value.problems
    for expected in (
        "digest.cutoff_hour: must be an hour from 0 to 23",
        "digest.periods[1]: must be one of daily, weekly",
        "digest.site_url: must be an absolute http(s) URL",
        "digest.nothing_new: expected true or false, got a string",
        "digest.email.to[0]: not an e-mail address: 'not-an-address'",
        "digest.email.security: must be one of starttls, ssl, none",
        "digest.email.port: must be a port number",
        "digest.email.colour: unknown key",
    ):
        assert expected in problems, (expected, problems)
    assert any(p.startswith("digest.email.ca_file: no such file") for p in problems)


# --- feed ids and size ---------------------------------------------------------------------


def _entry(n: int) -> DigestEntry:
    day = (datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=n))
    return DigestEntry(id=f"daily:{day:%Y-%m-%d}", period="daily", date=f"{day:%Y-%m-%d}", title=f"Data Points: day {n}",
                       path=f"daily/{day:%Y-%m-%d}.md", content_hash=str(n), created=day, updated=day,
                       lead=f"{n} stories.", content=f"<p>Digest {n}</p>", story_count=n)


def test_without_a_site_url_feed_ids_belong_to_the_installation(tmp_path: Path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = load(digest_settings(tmp_path / "one"))
    two = load(digest_settings(tmp_path / "two"))
    feeds = [digest_feed([_entry(1)], site_info(c)) for c in (one, one, two)]
    ids = [re.findall(r"<id>([^<]+)</id>", f) for f in feeds]
    assert ids[0] == ids[1]  # stable from run to run
    assert set(ids[0]).isdisjoint(ids[2])  # another installation, other ids
    for feed_ids in (ids[0], ids[2]):
        assert all(re.fullmatch(r"tag:[0-9a-f]{16}\.pipeline\.invalid,2026:digest(s|/daily/2026-01-02)", i)
                   for i in feed_ids), feed_ids
    assert "localhost" not in feeds[0]


def test_feed_xml_keeps_every_digest_and_the_content_of_the_newest(tmp_path: Path):
    entries = [_entry(n) for n in range(1, FULL_CONTENT_ENTRIES + 11)]
    path = tmp_path / "feed.xml"
    path.write_text(digest_feed(entries, SiteInfo(url=SITE_URL)), encoding="utf-8")
    parsed = feedparser.parse(path.read_bytes())
    assert parsed.bozo == 0 and len(parsed.entries) == len(entries)
    _check_atom(path)
    with_content = [e for e in parsed.entries if e.get("content")]
    assert len(with_content) == FULL_CONTENT_ENTRIES
    assert with_content[-1].title == f"Data Points: day {len(entries) - FULL_CONTENT_ENTRIES + 1}"  # the newest ones
    assert all(e.summary for e in parsed.entries)

