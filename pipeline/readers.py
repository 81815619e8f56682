"""Readers: turn one raw document into parsed entries, without touching the store.

Each reader takes the payload bytes and returns ``ParsedDocument`` records, or
raises ``ReadError`` with a message a user can act on (what is wrong and,
where known, the line and column).

Feeds are read leniently, as feeds in the wild need: an ill-formed feed is
read with a warning as long as every entry in it could be read; one that
would lose entries is refused rather than half-read.
"""

from __future__ import annotations

import email
import email.errors
import email.policy
import email.utils
import gzip
import hashlib
import html as html_lib
import json
import re
import zlib
from collections import Counter
from datetime import datetime
from email.message import EmailMessage, Message
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

import feedparser
from bs4 import BeautifulSoup

from .boilerplate import VIEW_ONLINE, clean_html, clean_text
from .models import Entry, ParsedDocument, RawDocument, SourceHint
from .when import parse_when

FEED_SUFFIXES = {".xml", ".rss", ".atom", ".rdf", ".feed", ".json", ".jsonfeed"}
MEDIA_BY_SUFFIX = {
    **{s: "feed" for s in FEED_SUFFIXES},
    ".eml": "email",
    ".mbox": "mbox",
    ".mbx": "mbox",
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
}

# Elements that never hold article text.
NON_CONTENT_TAGS = ("script", "style", "noscript", "template", "iframe", "object", "embed", "form", "svg")
PAGE_CHROME_TAGS = ("nav", "header", "footer", "aside")


class ReadError(Exception):
    """The document cannot be read; the message says why."""


def detect_media(path: PurePath, head: bytes) -> str | None:
    """The media of a file, from its suffix, else from its first bytes."""
    by_suffix = MEDIA_BY_SUFFIX.get(path.suffix.lower())
    if by_suffix:
        return by_suffix
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
    if start.startswith(b"from "):
        return "mbox"
    if start.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf")):
        return "feed"
    if start.startswith((b"<!doctype html", b"<html")):
        return "html"
    if start.startswith(b"{"):
        return "feed"
    if re.match(rb"(?:[a-z0-9-]+:[^\n]*\r?\n)+", start) and re.search(rb"^(from|subject|date|received):", start, re.M):
        return "email"
    return None


def read_document(doc: RawDocument) -> tuple[ParsedDocument, ...]:
    """Parse a raw document according to its media."""
    payload = doc.payload
    if payload[:2] == b"\x1f\x8b":
        try:
            payload = gzip.decompress(payload)
        except (OSError, EOFError, zlib.error) as exc:
            raise ReadError(f"gzip-compressed data that cannot be decompressed: {exc}") from None
    reader = _READERS.get(doc.media)
    if reader is None:
        raise ReadError(f"unsupported media {doc.media!r}")
    return reader(payload, doc)


def _stable_guid(*parts: str | None) -> str:
    return "sha1:" + hashlib.sha1("\0".join(p or "" for p in parts).encode()).hexdigest()


# --- feeds -------------------------------------------------------------------


def _read_feed(payload: bytes, doc: RawDocument) -> tuple[ParsedDocument, ...]:
    start = payload.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start in (b"{", b"["):
        return (_read_json_feed(payload, doc),)
    if _OPML_ROOT.search(payload[:4096]):
        raise ReadError("an OPML subscription list, not a feed (list it as the fetch.opml file instead)")
    headers = {k.lower(): v for k, v in doc.headers}
    parsed = feedparser.parse(
        payload,
        response_headers=headers or None,
        sanitize_html=False,  # output is sanitized where it is rendered
        resolve_relative_uris=False,
    )
    bozo = _describe_bozo(parsed.get("bozo_exception")) if parsed.get("bozo") else None
    feed = parsed.feed
    if not parsed.get("version") and not parsed.entries:
        if bozo:
            raise ReadError(f"not a readable feed: {bozo}")
        raise ReadError("not a feed: no RSS, Atom or RDF elements found")
    if bozo:
        # The lenient parser reads past most errors; if it still lost entries,
        # storing the rest would silently drop part of the feed.
        expected = _count_entry_elements(payload, parsed.get("encoding"))
        if len(parsed.entries) < expected:
            raise ReadError(
                f"feed is not well-formed ({bozo}): only {len(parsed.entries)} of {expected} entries could be read"
            )
    if not parsed.entries and not (feed.get("title") or feed.get("link")):
        if bozo:
            raise ReadError(f"not a readable feed: {bozo}")
        raise ReadError("empty feed: no title, no link and no entries")
    warnings: tuple[str, ...] = ()
    if bozo:
        warnings = (f"feed is not well-formed, read what could be read: {bozo}",)
    self_link = next((ln.get("href") for ln in feed.get("links", []) if ln.get("rel") == "self"), None)
    hint = SourceHint(
        name=_plain(feed.get("title"), html=_is_html(feed.get("title_detail"))) or None,
        site_url=feed.get("link") or None,
        feed_url=self_link or (doc.origin if doc.origin.startswith(("http://", "https://")) else None),
    )
    shared = _shared_links(e.get("link") for e in parsed.entries if not e.get("id"))
    entries = tuple(_feed_entry(e, link_is_shared=e.get("link") in shared) for e in parsed.entries)
    return (ParsedDocument(hint=hint, entries=entries, warnings=warnings),)


def _shared_links(links: Any) -> set[str]:
    """Links that several id-less entries of one document point to (a news page, a home page).

    Such a link cannot stand in for a missing entry id: every entry would get
    the same one and each would overwrite the one before it.
    """
    counts = Counter(link for link in links if link)
    return {link for link, n in counts.items() if n > 1}


def _fallback_guid(
    link: str | None, link_is_shared: bool, title: str | None, content: str, published: datetime | None
) -> str:
    """An id for an entry that has none: its link if that is its own, else a hash of what it says.

    The day it was published is part of the hash, so two posts titled "NixCon"
    years apart stay two, while one post listed twice on the same day is one.
    """
    if link and not link_is_shared:
        return link
    if not link:
        return _stable_guid(title, content[:500])
    day = published.date().isoformat() if published else None
    return _stable_guid(link, title, "" if title else content[:500], day)


def _entry_date(e: Any) -> datetime | None:
    """When a feed entry was published (else updated or created), in UTC.

    feedparser's own parse is used first; a date it could not parse is given to
    parse_when, which reads some it does not (a missing space after the comma,
    no zone). ``dict.get`` avoids feedparser's deprecated updated->published mapping.
    """
    for key in ("published", "updated", "created"):
        when = parse_when(dict.get(e, f"{key}_parsed")) or parse_when(dict.get(e, key))
        if when:
            return when
    return None


_OPML_ROOT = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<opml[\s>]", re.S | re.I)
# Start tags of RSS <item> and Atom <entry> elements, with or without a namespace prefix.
_ENTRY_START = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s/>]")
_CDATA_OR_COMMENT = re.compile(r"<!\[CDATA\[.*?\]\]>|<!--.*?-->", re.S)


def _count_entry_elements(payload: bytes, encoding: str | None) -> int:
    """How many <item>/<entry> elements the raw document holds (outside CDATA and comments)."""
    try:
        text = payload.decode(encoding or "utf-8", errors="replace")
    except LookupError:
        text = payload.decode("utf-8", errors="replace")
    return len(_ENTRY_START.findall(_CDATA_OR_COMMENT.sub("", text)))


def _is_html(detail: Any) -> bool:
    """Whether feedparser says a text construct holds markup (its type is not text/plain)."""
    return not (isinstance(detail, dict) and detail.get("type") == "text/plain")


def _describe_bozo(exc: Any) -> str:
    if exc is None:
        return "unknown error"
    get_line = getattr(exc, "getLineNumber", None)
    if callable(get_line):
        message = exc.getMessage() if hasattr(exc, "getMessage") else str(exc)
        column = exc.getColumnNumber() if callable(getattr(exc, "getColumnNumber", None)) else None
        if isinstance(column, int):
            # expat counts columns from 0; people (and editors) count them from 1
            return f"line {get_line()}, column {column + 1}: {message}"
        return f"line {get_line()}: {message}"
    return str(exc) or type(exc).__name__


def _feed_entry(e: Any, *, link_is_shared: bool = False) -> Entry:
    content, content_type = "", "text"
    contents = e.get("content") or []
    chosen = next((c for c in contents if "html" in (c.get("type") or "")), contents[0] if contents else None)
    if chosen is not None and chosen.get("value"):
        content, content_type = chosen["value"], "html" if "html" in (chosen.get("type") or "html") else "text"
    elif e.get("summary"):
        detail = e.get("summary_detail") or {}
        content = e["summary"]
        content_type = "text" if detail.get("type") == "text/plain" else "html"
    published = _entry_date(e)
    link = e.get("link") or None
    title = _plain(e.get("title"), html=_is_html(e.get("title_detail"))) or None
    guid = e.get("id") or _fallback_guid(link, link_is_shared, title, content, published)
    categories = tuple(t.get("term") for t in e.get("tags", []) if t.get("term"))
    return Entry(
        guid=str(guid),
        url=link,
        title=title,
        author=e.get("author") or None,
        published=published,
        content=content,
        content_type=content_type,
        categories=categories,
    )


def _str(value: Any) -> str | None:
    """A JSON string value, or None for anything else (JSON Feeds in the wild put lists and numbers anywhere)."""
    return value if isinstance(value, str) and value.strip() else None


def _json_id(value: Any) -> str | None:
    """A JSON Feed item id: a string, or a number written as one (JSON Feed 1.0 feeds use numbers)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return _str(value)


def _read_json_feed(payload: bytes, doc: RawDocument) -> ParsedDocument:
    try:
        data = json.loads(payload.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ReadError(f"JSON is not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ReadError(f"not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ReadError("not valid JSON: nested too deeply") from None
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or "jsonfeed.org/version/" not in version:
        raise ReadError("JSON but not a JSON Feed (no \"version\": \"https://jsonfeed.org/version/1.x\")")
    raw_items = data.get("items")
    if not isinstance(raw_items, list):
        raise ReadError("JSON Feed without an \"items\" list")
    for i, it in enumerate(raw_items):
        if not isinstance(it, dict):
            raise ReadError(f"items[{i}] is not an object")
    shared = _shared_links(
        _str(it.get("url")) or _str(it.get("external_url")) for it in raw_items if _json_id(it.get("id")) is None
    )
    entries = []
    for it in raw_items:
        html, text, summary = _str(it.get("content_html")), _str(it.get("content_text")), _str(it.get("summary"))
        content, ctype = (html, "html") if html else (text or summary or "", "text")
        authors = it.get("authors")
        if not isinstance(authors, list):
            authors = [it["author"]] if isinstance(it.get("author"), dict) else []
        names = [_str(a.get("name")) or _str(a.get("url")) for a in authors if isinstance(a, dict)]
        author = ", ".join(n for n in names if n) or None
        url = _str(it.get("url")) or _str(it.get("external_url"))
        title = _plain(_str(it.get("title")), html=False) or None
        guid = _json_id(it.get("id"))
        published = parse_when(_str(it.get("date_published")) or _str(it.get("date_modified")))
        tags = it.get("tags") if isinstance(it.get("tags"), list) else []
        entries.append(
            Entry(
                guid=guid or _fallback_guid(url, url in shared, title, content, published),
                url=url,
                title=title,
                author=author,
                published=published,
                content=content,
                content_type=ctype,
                categories=tuple(t for t in tags if _str(t)),
            )
        )
    name = _plain(_str(data.get("title")), html=False) or None
    site_url = _str(data.get("home_page_url"))
    if not entries and not (name or site_url):
        raise ReadError("empty feed: no title, no home page and no items")
    hint = SourceHint(name=name, site_url=site_url, feed_url=_str(data.get("feed_url")))
    return ParsedDocument(hint=hint, entries=tuple(entries))


# --- e-mail ------------------------------------------------------------------

# The link a newsletter offers to its own web copy: "View in browser", "Read this
# issue on the web", "View online", "Web version", and the German "Im Browser ansehen".
_VIEW_ONLINE = re.compile(
    VIEW_ONLINE
    + r"|\b(?:im|in ihrem) (?:web)?browser (?:ansehen|anzeigen|öffnen|lesen)\b|\bonline (?:ansehen|anzeigen|lesen)\b"
    r"|\b(?:web|webseiten|browser|online)-?ansicht\b",
    re.I,
)


def _read_email(payload: bytes, doc: RawDocument) -> tuple[ParsedDocument, ...]:
    return (parse_message(payload),)


def _read_mbox(payload: bytes, doc: RawDocument) -> tuple[ParsedDocument, ...]:
    messages = split_mbox(payload)
    if not messages:
        raise ReadError("no messages found (an mbox file starts each message with a 'From ' line)")
    out = []
    for n, message in enumerate(messages, 1):
        try:
            out.append(parse_message(message))
        except ReadError as exc:
            raise ReadError(f"message {n}: {exc}") from None
    return tuple(out)


def split_mbox(payload: bytes) -> list[bytes]:
    """Messages of an mbox file: each starts at a line beginning with 'From '."""
    parts = re.split(rb"(?:^|\r?\n)From [^\n]*\n", payload)
    messages = [p for p in parts[1:]] if payload.startswith(b"From ") else [p for p in parts[1:] if p.strip()]
    return [re.sub(rb"(?m)^>(>*From )", rb"\1", m) for m in messages]


def _header(msg: Message, name: str) -> str | None:
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001 - malformed headers must not stop the message
        raw = msg.get_all(name, failobj=[]) if hasattr(msg, "get_all") else []
        value = raw[0] if raw else None
    return str(value).strip() if value is not None else None


_UNQUOTED_BOUNDARY = re.compile(rb"(?im)^(content-type:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*?\bboundary=)([^\"\s;]+)")


def _repair_boundary(payload: bytes, msg: EmailMessage) -> EmailMessage:
    """Parse again with the boundary quoted, if an unquoted one held characters that end a token.

    Outlook writes ``boundary=----=_NextPart_...`` without quotes; a strict parser
    reads the boundary as ``----`` and finds no parts at all.
    """
    if msg.get_content_maintype() != "multipart" or not any(
        isinstance(d, email.errors.StartBoundaryNotFoundDefect) for d in msg.defects
    ):
        return msg
    head_end = re.search(rb"\r?\n\r?\n", payload)
    head = payload[: head_end.start()] if head_end else payload
    m = _UNQUOTED_BOUNDARY.search(head)
    if not m or b"\n--" + m.group(2) not in payload:
        return msg
    fixed = head[: m.start(2)] + b'"' + m.group(2) + b'"' + head[m.end(2):] + payload[len(head):]
    repaired = email.message_from_bytes(fixed, policy=email.policy.default)
    return repaired if isinstance(repaired, EmailMessage) else msg


def parse_message(payload: bytes) -> ParsedDocument:
    msg = email.message_from_bytes(payload, policy=email.policy.default)
    if not isinstance(msg, EmailMessage) or not msg.keys():
        raise ReadError("not an e-mail message: no headers found")
    msg = _repair_boundary(payload, msg)
    subject = _header(msg, "Subject")
    sender = _header(msg, "From") or ""
    name, address = email.utils.parseaddr(sender)
    list_id = _header(msg, "List-Id")
    if list_id:
        m = re.search(r"<([^>]+)>", list_id)
        list_id = (m.group(1) if m else list_id).strip().lower()
    body_part = None
    try:
        body_part = msg.get_body(preferencelist=("html", "plain"))
    except Exception:  # noqa: BLE001
        body_part = None
    if body_part is None and msg.get_content_maintype() == "text":
        body_part = msg
    content, ctype = "", "text"
    if body_part is not None:
        content = _part_text(body_part)
        ctype = "html" if body_part.get_content_subtype() == "html" else "text"
    if not subject and not content.strip():
        parts = ", ".join(sorted({p.get_content_type() for p in msg.walk() if not p.is_multipart()})) or "none"
        raise ReadError(f"message has neither a subject nor a readable text or HTML part (parts: {parts})")
    message_id = (_header(msg, "Message-ID") or "").strip("<> ") or None
    url = _view_online_link(content) if ctype == "html" else _view_online_text_link(content)
    content = clean_html(content) if ctype == "html" else clean_text(content)
    entry = Entry(
        guid=message_id or _stable_guid(sender, subject, _header(msg, "Date")),
        url=url,
        title=subject or None,
        author=name or address or None,
        published=parse_when(_header(msg, "Date")),
        content=content,
        content_type=ctype,
    )
    domain = address.rsplit("@", 1)[-1].lower() if "@" in address else None
    hint = SourceHint(
        name=name or address or None,
        email=address.lower() or None,
        list_id=list_id or None,
        site_url=f"https://{domain}/" if domain else None,
    )
    return ParsedDocument(hint=hint, entries=(entry,))


# Labels that senders put on text of any single-byte Western encoding, and on UTF-8 by mistake.
_LOOSE_LABELS = frozenset(("", "us-ascii", "ascii", "iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1",
                           "windows-1252", "cp1252", "x-user-defined", "unknown-8bit", "8bit"))


def _part_text(part: Message) -> str:
    """Decoded text of a MIME part, surviving wrong or unknown charset labels.

    A part labelled US-ASCII, ISO-8859-1 or Windows-1252 (or not at all) is
    read as UTF-8 when its bytes are valid UTF-8 with some non-ASCII in them
    (a common mislabel, and one that real Latin-1 text practically never
    makes), else as Windows-1252, which is what such labels mean in practice
    (the curly quotes of 0x91-0x94 included). Any other declared charset is
    tried strictly first, then UTF-8 and Windows-1252; characters are never
    silently replaced.
    """
    try:
        raw = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - a broken transfer encoding: fall back to the undecoded text
        raw = None
    if raw is None:
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    if isinstance(raw, str):
        return raw
    declared = (part.get_content_charset() or "").strip().lower()
    if declared in _LOOSE_LABELS:
        candidates = ["utf-8", "cp1252"] if not raw.isascii() else ["ascii"]
    else:
        candidates = [declared, "utf-8", "cp1252"]
    for candidate in dict.fromkeys(candidates):
        try:
            return raw.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return raw.decode("latin-1")


_ANCHOR = re.compile(
    r"""<a\b[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))[^>]*>(.{0,4000}?)</a\s*>""", re.I | re.S
)
_TAG = re.compile(r"<[^>]*>")


def _view_online_link(html: str) -> str | None:
    for m in _ANCHOR.finditer(html):
        href = html_lib.unescape(next(g for g in m.groups()[:3] if g is not None).strip())
        text = " ".join(html_lib.unescape(_TAG.sub(" ", m.group(4))).split())
        if _VIEW_ONLINE.search(text) and href.startswith(("http://", "https://")):
            return href
    return None


_TEXT_VIEW_ONLINE = re.compile(r"^.{0,80}?(https?://\S+)\s*$")


def _view_online_text_link(text: str) -> str | None:
    """The web copy a plain-text newsletter names near its top ("View in browser: https://...")."""
    for line in text.splitlines()[:15]:
        m = _TEXT_VIEW_ONLINE.match(line.strip())
        if m and _VIEW_ONLINE.search(line):
            return m.group(1).rstrip(">)")
    return None


# --- single articles -----------------------------------------------------------


def _meta(soup: BeautifulSoup, *names: str) -> str | None:
    for name in names:
        tag = soup.find("meta", attrs={"property": name}) or soup.find("meta", attrs={"name": name})
        if tag and tag.get("content"):
            return str(tag["content"]).strip()
    return None


def _read_html(payload: bytes, doc: RawDocument) -> tuple[ParsedDocument, ...]:
    soup = BeautifulSoup(payload, "html.parser")
    if soup.find(["html", "body", "article", "p", "div"]) is None:
        raise ReadError("not an HTML page: no html, body or paragraph elements")
    canonical = soup.find("link", rel="canonical")
    url = (canonical.get("href") if canonical else None) or _meta(soup, "og:url")
    title = _meta(soup, "og:title") or (soup.title.get_text(" ", strip=True) if soup.title else None)
    h1 = soup.find("h1")
    if not title and h1:
        title = h1.get_text(" ", strip=True)
    time_tag = soup.find("time", attrs={"datetime": True})
    published = parse_when(
        _meta(soup, "article:published_time", "date", "dc.date", "DC.date.issued")
        or (time_tag["datetime"] if time_tag else None)
    )
    author = _meta(soup, "author", "article:author")
    site_name = _meta(soup, "og:site_name")
    for tag in soup.find_all(NON_CONTENT_TAGS):
        tag.decompose()
    main = soup.find("article") or soup.find("main") or soup.find(attrs={"role": "main"}) or soup.body or soup
    for tag in main.find_all(PAGE_CHROME_TAGS):
        tag.decompose()
    first_heading = main.find("h1")
    if first_heading and title and first_heading.get_text(" ", strip=True) in title:
        first_heading.decompose()
    site_url = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}/" if url else None
    entry = Entry(
        guid=url or "file:" + PurePath(doc.origin).name,
        url=url,
        title=title,
        author=author,
        published=published,
        content=str(main),
        content_type="html",
    )
    return (ParsedDocument(hint=SourceHint(name=site_name, site_url=site_url), entries=(entry,)),)


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)


def split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Simple ``key: value`` front matter between ``---`` lines, and the rest."""
    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, text
    meta: dict[str, str] = {}
    for line in m.group(1).splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            key, value = line.split(":", 1)
            meta[key.strip().lower()] = value.strip().strip("\"'")
    return meta, text[m.end():]


def _decode_text(payload: bytes, origin: str) -> str:
    try:
        return payload.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return payload.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise ReadError(f"text is neither UTF-8 nor Windows-1252: {exc}") from None


def _read_text(payload: bytes, doc: RawDocument, *, markdown: bool) -> tuple[ParsedDocument, ...]:
    if b"\x00" in payload[:4096]:
        raise ReadError("binary data, not text")
    meta, body = split_front_matter(_decode_text(payload, doc.origin))
    title = meta.get("title")
    lines = body.strip("\n").splitlines()
    if not title and lines:
        if markdown:
            for i, line in enumerate(lines):
                if line.startswith("# "):
                    title = line[2:].strip()
                    del lines[i]
                    break
        if not title:
            title = lines.pop(0).lstrip("# ").strip()
    body = "\n".join(lines).strip()
    if not title and not body:
        raise ReadError("empty document")
    url = meta.get("url") or None
    site_url = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}/" if url else None
    entry = Entry(
        guid=meta.get("id") or url or "file:" + PurePath(doc.origin).name,
        url=url,
        title=title,
        author=meta.get("author") or None,
        published=parse_when(meta.get("published") or meta.get("date")),
        content=body,
        content_type="markdown" if markdown else "text",
        categories=tuple(t.strip() for t in meta.get("tags", "").split(",") if t.strip()),
    )
    return (ParsedDocument(hint=SourceHint(name=meta.get("source") or None, site_url=site_url), entries=(entry,)),)


def _plain(value: Any, *, html: bool = True) -> str:
    """Text of a title-like value: spaces collapsed and, if it is HTML, tags dropped and entities decoded.

    A plain-text title keeps its angle brackets: "Vec<T> explained" is not markup.
    """
    if not value:
        return ""
    text = str(value)
    if html and ("<" in text or "&" in text):
        text = BeautifulSoup(text, "html.parser").get_text(" ")
    return " ".join(text.split())


_READERS = {
    "feed": _read_feed,
    "email": _read_email,
    "mbox": _read_mbox,
    "html": _read_html,
    "markdown": lambda p, d: _read_text(p, d, markdown=True),
    "text": lambda p, d: _read_text(p, d, markdown=False),
}
