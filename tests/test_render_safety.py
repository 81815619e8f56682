"""Safety of the outputs: hostile input HTML, special characters in titles, file names, strict templates."""

from __future__ import annotations

import email
import re
from dataclasses import replace
from datetime import datetime, timezone
from email import policy
from pathlib import Path

import jinja2
import pytest
from bs4 import BeautifulSoup

from pipeline.atom import digest_feed
from pipeline.digest import build_digest, digest_files
from pipeline.models import StoredItem
from pipeline.pages import EventPage, IndexPage, RelatedEvent, Site, TopicPage, TopicRef, render_site
from pipeline.render import (
    Links,
    SiteInfo,
    html_environment,
    render_digest,
    rich,
    safe_name,
    safe_url,
    sanitize_html,
)
from pipeline.store_digests import DigestEntry

from .digest_helpers import digest_settings, load

NOW = datetime(2026, 4, 13, 6, 0, tzinfo=timezone.utc)

HOSTILE = [
    "<script>alert('x')</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    '<img src="x.png" onerror="alert(1)">',
    '<a href="javascript:alert(1)">click</a>',
    '<a href="JaVaScRiPt:alert(1)">mixed case</a>',
    '<a href=" javascript:alert(1)">leading space</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data</a>',
    '<iframe src="https://evil.example/"></iframe>',
    '<form action="https://evil.example/"><input name="q"><button>Go</button></form>',
    '<div style="width: expression(alert(1))">css expression</div>',
    '<p style="background:url(javascript:alert(1))">css url</p>',
    "<style>body { background: expression(alert(1)) }</style>",
    '<svg onload="alert(1)"><circle r="1"/></svg>',
    '<object data="x.swf"></object><embed src="x.swf">',
    '<body onload="alert(1)">body</body>',
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
    '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
    "[markdown link](javascript:alert(1))",
    "<details open ontoggle=alert(1)>x</details>",
]


def _assert_harmless(html: str, *, own_style_ok: bool = False) -> None:
    soup = BeautifulSoup(html, "html.parser")
    assert soup.find("meta", attrs={"http-equiv": True}) is None
    if soup.body is not None:  # a whole page: its own head is ours; the body holds what came from inputs
        soup = soup.body
    for tag in ("script", "iframe", "form", "input", "button", "object", "embed", "svg", "math", "meta", "frame"):
        assert soup.find(tag) is None, tag
    if not own_style_ok:
        assert soup.find("style") is None
    for el in soup.find_all(True):
        for name, value in el.attrs.items():
            assert not name.lower().startswith("on"), (el.name, name)
            text = " ".join(value) if isinstance(value, list) else str(value)
            if name in ("href", "src", "action", "data"):
                assert re.match(r"^(https?:|mailto:|\.\./|[a-z0-9-]+/|#)", text.strip(), re.I), text
            assert "javascript:" not in text.lower()
    assert "expression(" not in html.lower()


@pytest.mark.parametrize("fragment", HOSTILE)
def test_sanitizer_removes_every_active_part(fragment: str):
    cleaned = sanitize_html(fragment)
    _assert_harmless(cleaned)
    _assert_harmless(str(rich(fragment)))


def test_sanitizer_keeps_ordinary_markup():
    assert sanitize_html('<p>Read <a href="https://a.example/x">this</a> <em>now</em></p>') == (
        '<p>Read <a href="https://a.example/x" rel="noopener noreferrer nofollow">this</a> <em>now</em></p>'
    )
    assert str(rich("A *short* [link](https://a.example/)")) == (
        '<p>A <em>short</em> <a href="https://a.example/" rel="noopener noreferrer nofollow">link</a></p>'
    )


def test_safe_url_keeps_only_web_and_mail_links():
    assert safe_url("https://a.example/x?y=1") == "https://a.example/x?y=1"
    assert safe_url("mailto:a@b.example") == "mailto:a@b.example"
    for bad in ("javascript:alert(1)", " JAVASCRIPT:alert(1)", "java\nscript:alert(1)", "data:text/html,x",
                "vbscript:x", "//evil.example/", "relative/path", "", None):
        assert safe_url(bad) == "", bad


def _hostile_item(n: int, body: str) -> StoredItem:
    return StoredItem(
        id=f"i{n}", source_id="evil", source_name='Evil <b>"Source"</b> & Co', tier=3,
        url="javascript:alert(1)" if n % 2 else f"https://ok.example/{n}",
        title=f'<script>alert({n})</script> *bold* _under_ [x](y) # {n} & "quotes" <img src=x onerror=alert(1)>'
              + ("\r\nBcc: victim@example.org" if n == 0 else ""),
        author=None, published=NOW, first_seen=NOW,
        body=f"Some opening words long enough to be taken as a summary sentence here. {body}\n\nMore text follows in "
             "a second paragraph that is also long enough.",
        content_hash=str(n), kind="news", topics=("cybersecurity",), event_id=None,
    )


def test_hostile_items_leave_every_html_output_harmless(tmp_path: Path):
    config = load(digest_settings(tmp_path, {"site_url": '"https://digests.example.org/"'}))
    items = [_hostile_item(n, body) for n, body in enumerate(HOSTILE)]
    view = build_digest(items, {}, config.topics, period="daily", now=NOW, cfg=config.digest)
    rendered = render_digest(view, config.digest)
    for html in (rendered.html, rendered.email_html, rendered.feed_html):
        _assert_harmless(html, own_style_ok=True)
        soup = BeautifulSoup(html, "html.parser")
        titles = [h.get_text() for h in soup.find_all("h3")]
        assert len(titles) == len(items)
        assert all(t.startswith("<script>alert(") and "onerror" in t for t in titles)  # shown, as text
    # the page's own stylesheet is the only style element
    assert len(BeautifulSoup(rendered.html, "html.parser").find_all("style")) == 1
    # Markdown: each hostile title stays one heading line, escaped
    headings = [ln for ln in rendered.markdown.splitlines() if ln.startswith("### ")]
    assert len(headings) == len(items)
    for line in headings:
        assert "\\<script\\>" in line and "\\*bold\\*" in line and "\\[x\\]" in line
    assert "](javascript:" not in rendered.markdown and "javascript:" not in rendered.text
    entry = DigestEntry(id="daily:2026-04-13", period="daily", date="2026-04-13", title=view.title, path="x",
                        content_hash="h", created=NOW, updated=NOW, lead=view.lead, content=rendered.feed_html,
                        story_count=view.story_count)
    feed = digest_feed([entry], SiteInfo(url="https://digests.example.org/"))
    import feedparser

    parsed = feedparser.parse(feed.encode())
    assert parsed.bozo == 0
    _assert_harmless(parsed.entries[0].content[0].value, own_style_ok=True)


def test_the_email_of_hostile_items_is_harmless(tmp_path: Path):
    from pipeline.render import digest_email

    config = load(digest_settings(tmp_path))
    view = build_digest([_hostile_item(n, b) for n, b in enumerate(HOSTILE)], {}, config.topics, period="daily",
                        now=NOW, cfg=config.digest)
    rendered = render_digest(view, config.digest)
    msg = digest_email(view, text=rendered.text, html=rendered.email_html, cfg=config.digest, date=NOW,
                       content_hash=rendered.content_hash)
    parsed = email.message_from_bytes(msg.as_bytes(), policy=policy.default)
    _, html = (p.get_content() for p in parsed.iter_parts())
    _assert_harmless(html, own_style_ok=True)
    assert parsed["Bcc"] is None
    from pipeline.render import build_email

    injected = build_email(subject="Title\r\nBcc: victim@example.org", text="t", html="<p>h</p>", sender="a@b.example",
                           sender_name="Site\nX-Evil: 1", to=("c@d.example",), date=NOW, msg_id="<m@b.example>")
    reparsed = email.message_from_bytes(injected.as_bytes(), policy=policy.default)
    assert reparsed["Bcc"] is None and reparsed["X-Evil"] is None  # a title cannot add header lines
    assert reparsed["Subject"] == "Title Bcc: victim@example.org"


def test_file_names_cannot_leave_their_folder(tmp_path: Path):
    assert safe_name("../../etc/passwd") == "etc-passwd"
    assert safe_name("..") == "page" and safe_name("") == "page" and safe_name("/") == "page"
    assert safe_name("Ünïcode Title: with / slashes\\ and .dots.") == "n-code-title-with-slashes-and-dots"
    links = Links("../", "html")
    assert links.event("../../secret") == "../events/secret.html"
    assert links.topic("a/b") == "../topics/a-b.html"
    assert links.digest("daily", "../x") == ""
    for period, key in (("daily", "../../x"), ("daily", "2026-04-13/../../x"), ("../etc", "2026-04-13"), ("daily", "")):
        with pytest.raises(ValueError):
            digest_files(tmp_path, period, key)
    files = digest_files(tmp_path, "weekly", "2026-W16")
    assert files["md"] == tmp_path / "weekly" / "2026-W16.md"


def test_html_templates_are_strict_and_overridable(tmp_path: Path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "digest.html.j2").write_text("<p>{{ digest.title }}</p><p>{{ digest.not_a_field }}</p>")
    env = html_environment(templates)
    view = build_digest([_hostile_item(0, "")], {}, (), period="daily", now=NOW,
                        cfg=load(digest_settings(tmp_path)).digest)
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("digest.html.j2").render(digest=view, site=SiteInfo(), links=Links(None, "html"))
    (templates / "digest.html.j2").write_text("<p>{{ digest.title }}</p>")
    config = load(digest_settings(tmp_path, {"templates": f'"{templates}"'}))
    rendered = render_digest(view, config.digest)
    assert rendered.html.startswith("<p>Data Points: &lt;script&gt;")  # user template, still autoescaped


PLAIN = "1. Introducing X takes a List<String> and *returns* a Map<K, V> & more. A news report from Src, a tier-3 source."


def test_summaries_are_plain_text_in_every_output(tmp_path: Path):
    """A summary is text, not Markdown or HTML: angle brackets, stars and a leading "1. " stay as written."""
    config = load(digest_settings(tmp_path))
    view = build_digest([_hostile_item(1, "")], {}, config.topics, period="daily", now=NOW, cfg=config.digest)
    view = replace(view, sections=tuple(
        replace(sec, stories=tuple(replace(story, summary=PLAIN) for story in sec.stories)) for sec in view.sections
    ))
    rendered = render_digest(view, config.digest)
    for html in (rendered.html, rendered.email_html, rendered.feed_html):
        soup = BeautifulSoup(html, "html.parser")
        (summary,) = soup.select(".summary")
        assert summary.get_text() == PLAIN
        assert summary.find(True) is None  # no markup inside: no list, no <em>, no <String> element
        assert soup.find(["ol", "ul", "string"]) is None
    assert "<p class=\"summary\">1. Introducing X takes a List&lt;String&gt; and *returns* a Map&lt;K, V&gt; &amp; more." \
        in rendered.html
    assert r"1\. Introducing X takes a List\<String\> and \*returns\* a Map\<K, V\>" in rendered.markdown
    assert "\n  1. Introducing X takes a List<String>" in rendered.text and PLAIN in " ".join(rendered.text.split())

    event = EventPage(id="ev-1", title="An event", url="https://a.example/1", summary=PLAIN, source="Src", tier=3,
                      kind="news", others=(), topics=(TopicRef("policy", "Policy"),),
                      related=(RelatedEvent("ev-2", "Another", PLAIN, True),), when=NOW, updated=NOW)
    site = Site(events=(event,), topics=(TopicPage("policy", "Policy", (event,)),), index=IndexPage((), ()))
    pages = render_site(site, config)
    for name in ("events/ev-1.html", "topics/policy.html"):
        soup = BeautifulSoup(pages[Path(name)], "html.parser")
        summaries = soup.select(".summary")
        assert summaries and all(p.get_text() == PLAIN and p.find(True) is None for p in summaries), name
    for name in ("events/ev-1.md", "topics/policy.md"):
        assert r"1\. Introducing X takes a List\<String\>" in pages[Path(name)], name

