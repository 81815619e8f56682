"""Newsletters: e-mail decoding and clean-up, tracking links, identity, and roundups split into stories.

The evaluation set in tests/data/newsletters/ holds newsletter e-mails and feed entries with the
stories a reader finds in them (expected.json); heldout/ is a second set of the same kind in other
layouts (its README gives the figures it was first measured at).
"""

from __future__ import annotations

import base64
import json
import mailbox
import re
import shutil
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.ingest import ingest_paths, raw_from_bytes
from pipeline.links import tracked_target, unwrap
from pipeline.models import Item
from pipeline.normalize import canonical_url, children_of, normalize_entry
from pipeline.readers import detect_media, read_document
from pipeline.store import Store

from .conftest import ROOT, write_config

DATA = ROOT / "tests" / "data" / "newsletters"
SETS = [d for d in (DATA, DATA / "heldout") if (d / "expected.json").is_file()]
NOW = datetime(2026, 4, 20, 8, 0, tzinfo=timezone.utc)
MIN_PRECISION = MIN_RECALL = 0.9


def _expected(folder: Path) -> dict[str, dict]:
    return json.loads((folder / "expected.json").read_text(encoding="utf-8"))


def _read(path: Path) -> Item:
    payload = path.read_bytes()
    doc = raw_from_bytes(payload, origin=str(path), media=detect_media(path, payload[:1024]) or "email", received=NOW)
    (parsed,) = read_document(doc)
    assert len(parsed.entries) == 1, path
    return normalize_entry(parsed.entries[0], source_id="letter", raw_id=doc.id, base_url=None)


def _key(title: str) -> str:
    text = unicodedata.normalize("NFKC", title).lower().replace("\u2019", "'")
    return " ".join(re.sub(r"[^\w\s']", " ", text).split())


@dataclass
class Score:
    found: int = 0
    expected: int = 0
    right: int = 0

    @property
    def precision(self) -> float:
        return self.right / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        return self.right / self.expected if self.expected else 1.0


def _score(folder: Path) -> tuple[Score, list[str]]:
    """Story-level precision and recall: a found story is right when its title or its link
    is that of an expected story not matched yet."""
    total, lines = Score(), []
    for name, want in sorted(_expected(folder).items()):
        item = _read(folder / "cases" / name)
        found = [(s.title, s.url) for s in children_of(item)]
        wanted = [(s["title"], canonical_url(s["url"])) for s in want["stories"]]
        used: set[int] = set()
        right = 0
        for title, url in found:
            hit = next(
                (n for n, (t, u) in enumerate(wanted) if n not in used and (_key(t) == _key(title) or (url and url == u))),
                None,
            )
            if hit is not None:
                used.add(hit)
                right += 1
        total.found += len(found)
        total.expected += len(wanted)
        total.right += right
        lines.append(f"  {name:<52} found {len(found):>2}  expected {len(wanted):>2}  right {right:>2}")
    return total, lines


@pytest.mark.parametrize("folder", SETS, ids=lambda p: p.name)
def test_roundups_split_into_their_stories_with_precision_and_recall_of_at_least_0_9(folder: Path) -> None:
    score, lines = _score(folder)
    print(f"\nstories in {folder.relative_to(ROOT)}:")
    print("\n".join(lines))
    print(f"  precision {score.precision:.3f}  recall {score.recall:.3f}  "
          f"({score.right} right of {score.found} found, {score.expected} expected)")
    assert score.expected >= 40
    assert score.precision >= MIN_PRECISION and score.recall >= MIN_RECALL


@pytest.mark.parametrize("folder", SETS, ids=lambda p: p.name)
def test_a_single_story_post_is_never_split(folder: Path) -> None:
    singles = [name for name, want in _expected(folder).items() if not want["roundup"]]
    assert len(singles) >= 5
    split = {name: [c.title for c in children_of(_read(folder / "cases" / name))] for name in singles}
    assert not {name: titles for name, titles in split.items() if titles}


@pytest.mark.parametrize("folder", SETS, ids=lambda p: p.name)
def test_every_mime_shape_decodes_and_the_wrapping_is_removed(folder: Path) -> None:
    problems = []
    for name, want in sorted(_expected(folder).items()):
        item = _read(folder / "cases" / name)
        text = " ".join(f"{item.title}\n{item.body}".split())
        problems += [f"{name}: missing {s!r}" for s in want.get("must_contain", []) if " ".join(s.split()) not in text]
        problems += [f"{name}: still has {s!r}" for s in want.get("must_not_contain", []) if " ".join(s.split()) in text]
        assert "\ufffd" not in text and "Ã" not in text, name  # no replacement characters, no UTF-8 read as Latin-1
    assert not problems, "\n".join(problems)


# --- links -------------------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("tracked", "target"),
    [
        ("https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fnews.example%2Fa%3Fid%3D1&data=05%7C02",
         "https://news.example/a?id=1"),
        ("https://www.google.com/url?q=https://news.example/b&sa=D&usg=x", "https://news.example/b"),
        ("https://links.mailer.example/click?u=https%3A%2F%2Fnews.example%2Fc&sig=abc", "https://news.example/c"),
        ("https://t.letter.example/r/?redirect=https%3A%2F%2Fnews.example%2Fd&uid=7", "https://news.example/d"),
        ("https://click.convertkit-mail2.com/abc123/def456/" + _b64("https://news.example/e?x=1"),
         "https://news.example/e?x=1"),
        ("https://substack.com/redirect/2/" + _b64(json.dumps({"e": "https://news.example/f", "p": 3})) + ".SiGnAtUrE?j=eyJ1",
         "https://news.example/f"),
        ("https://track.letter.example/click/https%3A%2F%2Fnews.example%2Fg", "https://news.example/g"),
    ],
)
def test_a_tracking_redirect_is_unwrapped_to_its_target(tracked: str, target: str) -> None:
    assert tracked_target(tracked) == target
    assert canonical_url(tracked + "&utm_source=letter" if "?" in tracked else tracked) == target


@pytest.mark.parametrize(
    "url",
    [
        "https://x.us1.list-manage.com/track/click?u=5f3a9b&id=2c1d&e=8e7f",  # the target stays on the server
        "https://meridianlabs.example/blog/introducing-meridian-open-2",
        "https://news.example/search?q=open+weights",
        "https://link.mail.beehiiv.com/ss/c/u001.AbCdEfGhIjKlMnOpQrStUv/4bc/xyz",
    ],
)
def test_a_link_that_is_not_a_readable_tracker_is_left_alone(url: str) -> None:
    assert unwrap(url) == url


def test_a_redirect_inside_a_redirect_is_unwrapped_all_the_way() -> None:
    inner = "https://go.letter.example/track?target=https%3A%2F%2Fnews.example%2Fh%3Futm_medium%3Demail"
    outer = "https://eur01.safelinks.protection.outlook.com/?url=" + re.sub(r"[:/?=&%]", lambda m: f"%{ord(m.group()):02X}", inner)
    assert canonical_url(outer) == "https://news.example/h"


def test_the_same_story_behind_different_trackers_gets_one_link() -> None:
    """Stories that several cases link through different trackers end with the same URL."""
    links: dict[str, set[str]] = {}
    for name, want in _expected(DATA).items():
        for story in want["stories"]:
            links.setdefault(canonical_url(story["url"]) or "", set()).add(name)
    shared = {url for url, names in links.items() if len(names) >= 3}
    assert len(shared) >= 3
    found: dict[str, set[str]] = {}
    for name in _expected(DATA):
        for child in children_of(_read(DATA / "cases" / name)):
            if child.url in shared:
                found.setdefault(child.url, set()).add(name)
    assert {url: links[url] for url in shared} == found


# --- in the store ------------------------------------------------------------------


def _ingest(tmp_path: Path, *paths: Path, extra: str = "") -> tuple[Store, dict[str, int], list[str]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = load_config(write_config(tmp_path, extra, paths=[]))
    store = Store(config.store.path)
    store.sync_sources(config.sources)
    result = ingest_paths(store, config, list(paths), NOW)
    return store, result.counts, [str(p) for p in result.problems]


def test_a_roundup_is_stored_as_the_issue_and_one_item_per_story(tmp_path: Path) -> None:
    case = DATA / "cases" / "05-main-stories-plus-quick-hits.eml"
    store, counts, problems = _ingest(tmp_path, case)
    assert not problems
    want = _expected(DATA)[case.name]["stories"]
    parents = list(store.db.query("SELECT id, url FROM items WHERE parent_id IS NULL"))
    assert len(parents) == 1
    stories = list(store.db.query("SELECT * FROM items WHERE parent_id IS NOT NULL ORDER BY rowid"))
    assert [s["title"] for s in stories] == [s["title"] for s in want]
    assert [s["url"] for s in stories] == [canonical_url(s["url"]) for s in want]
    assert all(s["parent_id"] == parents[0]["id"] and s["source_id"] == stories[0]["source_id"] for s in stories)
    assert all(s["body"] and s["published"] for s in stories)
    assert counts == {"new": 1, "stories new": len(want), "files read": 1}
    # the same file again changes nothing; reading the raw document again neither
    again = ingest_paths(store, load_config(tmp_path / "config.toml"), [case], NOW)
    assert again.counts == {"unchanged files": 1}
    before = store.table_counts()
    from pipeline.ingest import renormalize

    renormalize(store, load_config(tmp_path / "config.toml"), NOW)
    assert store.table_counts() == before
    store.close()


def test_the_split_setting_of_a_source_is_honoured(tmp_path: Path) -> None:
    case = DATA / "cases" / "01-heading-per-story.eml"
    sender = re.search(rb"^From:.*<([^>]+)>", case.read_bytes(), re.M)
    assert sender
    address = sender.group(1).decode().lower()
    never = f'[[sources]]\nid = "letter"\nname = "Letter"\ntier = 2\nsplit = "never"\nmatch = ["{address}"]\n'
    store, counts, _ = _ingest(tmp_path / "never", case, extra=never)
    assert counts.get("stories new", 0) == 0 and store.db["items"].count == 1
    store.close()
    # "always" splits an issue that "auto" leaves whole: two linked stories are not enough for auto
    two = (
        "From: Two Things <two@letters.example>\nTo: r@inbox.example\nSubject: Two things\n"
        "Date: Mon, 13 Apr 2026 07:00:00 +0000\nMessage-ID: <two-1@letters.example>\n"
        "Content-Type: text/html; charset=utf-8\n\n"
        "<h2>Chip rule lands on Friday</h2><p>The rule covers accelerators. <a href='https://a.example/1'>More</a></p>"
        "<h2>Open model tops a leaderboard</h2><p>It held for a day. <a href='https://b.example/2'>More</a></p>\n"
    )
    (tmp_path / "two.eml").write_text(two)
    store, counts, _ = _ingest(tmp_path / "auto", tmp_path / "two.eml")
    assert counts.get("stories new", 0) == 0
    store.close()
    always = '[[sources]]\nid = "two"\nname = "Two Things"\nsplit = "always"\nmatch = ["two@letters.example"]\n'
    store, counts, _ = _ingest(tmp_path / "always", tmp_path / "two.eml", extra=always)
    assert counts.get("stories new") == 2
    store.close()


def test_a_bad_split_setting_is_a_config_error(tmp_path: Path, cli) -> None:
    config = write_config(tmp_path, '[[sources]]\nid = "x"\nsplit = "sometimes"\n')
    result = cli("status", config=config)
    assert result.code == 1
    assert "sources[" in result.err and ".split: must be one of auto, always, never" in result.err
    assert "Traceback" not in result.err


def test_one_issue_sent_to_two_addresses_and_delivered_twice_is_stored_once(tmp_path: Path) -> None:
    folder = DATA / "identity"
    files = sorted(folder.glob("*.eml"))
    assert len(files) == 3
    store, counts, problems = _ingest(tmp_path, *files)
    assert not problems
    parents = list(store.db.query("SELECT source_id, title FROM items WHERE parent_id IS NULL"))
    assert len(parents) == 1
    stories = store.db.execute("SELECT COUNT(*) FROM items WHERE parent_id IS NOT NULL").fetchone()[0]
    assert stories == 4  # the issue's four stories (tests/data/newsletters/README.md)
    # the same, whatever order the copies arrive in
    store2, _, _ = _ingest(tmp_path / "reversed", *reversed(files))
    assert store2.db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 1 + stories
    store.close(), store2.close()


def test_a_message_that_cannot_be_decoded_is_kept_raw_reported_and_skipped(tmp_path: Path, cli) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for f in (DATA / "broken").glob("*.eml"):
        shutil.copy(f, inbox / f.name)
    shutil.copy(DATA / "cases" / "01-heading-per-story.eml", inbox / "good.eml")
    config = write_config(tmp_path, paths=[])
    result = cli("--now", NOW.isoformat(), "ingest", inbox, config=config)
    assert result.code == 3, result.err
    for f in (DATA / "broken").glob("*.eml"):
        line = next((ln for ln in result.err.splitlines() if f.name in ln), "")
        assert line and ": " in line, f"{f.name} is not reported: {result.err}"
    assert "Traceback" not in result.err
    store = Store(tmp_path / "pipeline.db")
    failed = {Path(r["origin"]).name for r in store.db.query("SELECT origin FROM raw_documents WHERE parse_error IS NOT NULL")}
    assert failed == {f.name for f in (DATA / "broken").glob("*.eml")}
    assert store.db.execute("SELECT COUNT(*) FROM items WHERE parent_id IS NULL").fetchone()[0] == 1
    store.close()


def test_an_mbox_and_a_maildir_of_the_newsletters_are_read_whole(tmp_path: Path) -> None:
    emls = sorted((DATA / "cases").glob("*.eml"))
    box = mailbox.mbox(tmp_path / "letters.mbox")
    maildir = mailbox.Maildir(tmp_path / "Maildir")
    for f in emls:
        box.add(f.read_bytes())
        maildir.add(f.read_bytes())
    box.flush(), box.close()
    one, counts_one, problems_one = _ingest(tmp_path / "a", *emls)
    two, counts_two, problems_two = _ingest(tmp_path / "b", tmp_path / "letters.mbox")
    three, counts_three, problems_three = _ingest(tmp_path / "c", tmp_path / "Maildir")
    assert not (problems_one or problems_two or problems_three)
    titles = [sorted(r[0] for r in s.db.execute("SELECT title FROM items")) for s in (one, two, three)]
    assert titles[0] == titles[1] == titles[2]
    assert counts_two["new"] == counts_three["new"] == len(emls)
    for s in (one, two, three):
        s.close()


def _issue(stories: list[tuple[str, str]], *, message_id: str, to: str = "ana@inbox.example", token: str = "") -> bytes:
    """A small HTML roundup: one heading, a sentence and a link per story."""
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "The Letter <issue@letter.example>"
    msg["To"] = to
    msg["Subject"] = "The Letter #9"
    msg["Date"] = "Mon, 13 Apr 2026 07:00:00 +0000"
    msg["Message-ID"] = message_id
    body = "".join(
        f"<h2>{title}</h2><p>The {n}th story of the week, told in one sentence of its own for the readers. "
        f"<a href='{url}{token}'>Read more</a></p>"
        for n, (title, url) in enumerate(stories, 1)
    )
    msg.set_content("The Letter #9")
    msg.add_alternative(f"<html><body>{body}</body></html>", subtype="html")
    return msg.as_bytes()


STORIES = [
    ("Chip export rule lands on Friday", "https://wire.example/chips"),
    ("Meridian ships open weights for its new model", "https://wire.example/meridian"),
    ("A patch for the Nomad inference server", "https://wire.example/nomad"),
    ("Data-centre builds run late across the country", "https://wire.example/builds"),
]


def _titles(store: Store) -> list[str]:
    return sorted(r[0] for r in store.db.execute("SELECT title FROM items WHERE parent_id IS NOT NULL"))


def test_an_edited_issue_updates_its_stories_and_drops_the_ones_it_no_longer_has(tmp_path: Path) -> None:
    first = tmp_path / "in" / "a.eml"
    first.parent.mkdir()
    first.write_bytes(_issue(STORIES, message_id="<issue9@letter.example>"))
    store, _, _ = _ingest(tmp_path, first)
    assert _titles(store) == sorted(t for t, _ in STORIES)
    edited = [(STORIES[0][0], "https://wire.example/chips-corrected"), *STORIES[1:3]]  # a link fixed, a story cut
    first.write_bytes(_issue(edited, message_id="<issue9@letter.example>"))
    config = load_config(tmp_path / "config.toml")
    result = ingest_paths(store, config, [first], NOW)
    assert result.counts.get("stories removed") == 1
    assert _titles(store) == sorted(t for t, _ in edited)
    url = store.db.execute("SELECT url FROM items WHERE title = ?", [STORIES[0][0]]).fetchone()[0]
    assert url == "https://wire.example/chips-corrected"
    store.close()


def test_a_source_set_to_never_split_loses_the_stories_of_its_issues(tmp_path: Path) -> None:
    from pipeline.ingest import renormalize

    issue = tmp_path / "a.eml"
    issue.write_bytes(_issue(STORIES, message_id="<issue9@letter.example>"))
    source = '[[sources]]\nid = "letter"\nname = "The Letter"\nsplit = "{}"\nmatch = ["issue@letter.example"]\n'
    store, _, _ = _ingest(tmp_path, issue, extra=source.format("auto"))
    assert len(_titles(store)) == 4
    config = load_config(write_config(tmp_path, source.format("never"), paths=[]))
    store.sync_sources(config.sources)
    result = renormalize(store, config, NOW)
    assert result.counts.get("stories removed") == 4 and _titles(store) == []
    assert store.db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 1  # the issue itself stays
    store.close()


def test_one_issue_mailed_to_two_people_with_personal_link_tokens_has_one_set_of_stories(tmp_path: Path) -> None:
    a = tmp_path / "a.eml"
    b = tmp_path / "b.eml"
    a.write_bytes(_issue(STORIES, message_id="<issue9.ana@letter.example>", token="?sub=ana-7f3a"))
    b.write_bytes(_issue(STORIES, message_id="<issue9.joe@letter.example>", to="joe@inbox.example", token="?sub=joe-91c2"))
    store, counts, _ = _ingest(tmp_path, a, b)
    assert store.db.execute("SELECT COUNT(*) FROM items WHERE parent_id IS NULL").fetchone()[0] == 1
    assert _titles(store) == sorted(t for t, _ in STORIES)
    store.close()


def test_story_text_that_sounds_like_a_footer_is_kept() -> None:
    from pipeline.boilerplate import clean_html, clean_text

    more = "<p>A second paragraph of the story, long enough to be the body of a real news item here.</p>" * 3
    html = (
        "<h2>Meta changes its training rules</h2>"
        "<p>Meta will let EU users opt out of AI training on their posts, the company said.</p>"
        "<p>Ministers met at 10 Downing Street to discuss the plan.</p>" + more +
        "<p>You are receiving this because you subscribed. Unsubscribe</p>"
        "<p>The Letter, 12 Harbour Lane, Example City</p>"
    )
    cleaned = clean_html(html)
    assert "opt out of AI training" in cleaned and "10 Downing Street" in cleaned
    assert "Unsubscribe" not in cleaned and "Harbour Lane" not in cleaned
    text = "Meta will let EU users opt out of AI training.\n" + "More of the story.\n" * 6 + "The Letter, 12 Harbour Lane"
    assert "opt out" in clean_text(text) and "Harbour Lane" not in clean_text(text)
