"""Readers: turn one raw document into parsed entries, without touching the store.

Each reader takes the payload bytes and returns ``ParsedDocument`` records, or
raises ``ReadError`` with a message a user can act on (what is wrong and,
where known, the line and column).
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import gzip
import hashlib
import json
import re
from datetime import datetime, timezone
from email.message import EmailMessage, Message
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

import feedparser
from bs4 import BeautifulSoup

from .models import Entry, ParsedDocument, RawDocument, SourceHint

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
        except (OSError, EOFError) as exc:
            raise ReadError(f"gzip-compressed data that cannot be decompressed: {exc}") from None
    reader = _READERS.get(doc.media)
    if reader is None:
        raise ReadError(f"unsupported media {doc.media!r}")
    return reader(payload, doc)


# --- dates -------------------------------------------------------------------


def parse_when(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from ISO 8601, RFC 822 or a time tuple; None if unknown."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, tuple) or hasattr(value, "tm_year"):
        dt = datetime(*tuple(value)[:6], tzinfo=timezone.utc)
    else:
        text = str(value).strip()
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            try:
                dt = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                parsed = feedparser.datetimes._parse_date(text)  # handles the many odd feed formats
                if not parsed:
                    return None
                dt = datetime(*parsed[:6], tzinfo=timezone.utc)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _stable_guid(*parts: str | None) -> str:
    return "sha1:" + hashlib.sha1("\0".join(p or "" for p in parts).encode()).hexdigest()


# --- feeds -------------------------------------------------------------------


def _read_feed(payload: bytes, doc: RawDocument) -> tuple[ParsedDocument, ...]:
    start = payload.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start in (b"{", b"["):
        return (_read_json_feed(payload, doc),)
    headers = {k.lower(): v for k, v in doc.headers}
    parsed = feedparser.parse(
        payload,
        response_headers=headers or None,
        sanitize_html=False,  # output is sanitized where it is rendered
        resolve_relative_uris=False,
    )
    if not parsed.get("version") and not parsed.entries:
        if parsed.get("bozo"):
            raise ReadError(f"not a readable feed: {_describe_bozo(parsed.get('bozo_exception'))}")
        raise ReadError("not a feed: no RSS, Atom or RDF elements found")
    warnings: tuple[str, ...] = ()
    if parsed.get("bozo"):
        warnings = (f"feed is not well-formed, read what could be read: {_describe_bozo(parsed.get('bozo_exception'))}",)
    feed = parsed.feed
    self_link = next((ln.get("href") for ln in feed.get("links", []) if ln.get("rel") == "self"), None)
    hint = SourceHint(
        name=_plain(feed.get("title")) or None,
        site_url=feed.get("link") or None,
        feed_url=self_link or (doc.origin if doc.origin.startswith(("http://", "https://")) else None),
    )
    entries = tuple(_feed_entry(e) for e in parsed.entries)
    return (ParsedDocument(hint=hint, entries=entries, warnings=warnings),)


def _describe_bozo(exc: Any) -> str:
    if exc is None:
        return "unknown error"
    get_line = getattr(exc, "getLineNumber", None)
    if callable(get_line):
        message = exc.getMessage() if hasattr(exc, "getMessage") else str(exc)
        return f"line {get_line()}, column {exc.getColumnNumber()}: {message}"
    return str(exc) or type(exc).__name__


def _feed_entry(e: Any) -> Entry:
    content, content_type = "", "text"
    contents = e.get("content") or []
    chosen = next((c for c in contents if "html" in (c.get("type") or "")), contents[0] if contents else None)
    if chosen is not None and chosen.get("value"):
        content, content_type = chosen["value"], "html" if "html" in (chosen.get("type") or "html") else "text"
    elif e.get("summary"):
        detail = e.get("summary_detail") or {}
        content = e["summary"]
        content_type = "text" if detail.get("type") == "text/plain" else "html"
    published = parse_when(e.get("published_parsed") or e.get("updated_parsed") or e.get("created_parsed"))
    link = e.get("link") or None
    title = _plain(e.get("title")) or None
    guid = e.get("id") or link or _stable_guid(title, content[:500])
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


def _read_json_feed(payload: bytes, doc: RawDocument) -> ParsedDocument:
    try:
        data = json.loads(payload.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ReadError(f"JSON is not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ReadError(f"not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or "jsonfeed.org/version/" not in version:
        raise ReadError("JSON but not a JSON Feed (no \"version\": \"https://jsonfeed.org/version/1.x\")")
    raw_items = data.get("items")
    if not isinstance(raw_items, list):
        raise ReadError("JSON Feed without an \"items\" list")
    entries = []
    for i, it in enumerate(raw_items):
        if not isinstance(it, dict):
            raise ReadError(f"items[{i}] is not an object")
        html, text = it.get("content_html"), it.get("content_text")
        content, ctype = (html, "html") if html else (text or it.get("summary") or "", "text")
        authors = it.get("authors") or ([it["author"]] if isinstance(it.get("author"), dict) else [])
        author = ", ".join(a.get("name", "") for a in authors if isinstance(a, dict) and a.get("name")) or None
        url = it.get("url") or it.get("external_url") or None
        title = _plain(it.get("title")) or None
        entries.append(
            Entry(
                guid=str(it.get("id") or url or _stable_guid(title, str(content)[:500])),
                url=url,
                title=title,
                author=author,
                published=parse_when(it.get("date_published") or it.get("date_modified")),
                content=str(content),
                content_type=ctype,
                categories=tuple(str(t) for t in it.get("tags") or [] if isinstance(t, str)),
            )
        )
    hint = SourceHint(name=_plain(data.get("title")) or None, site_url=data.get("home_page_url"), feed_url=data.get("feed_url"))
    return ParsedDocument(hint=hint, entries=tuple(entries))


# --- e-mail ------------------------------------------------------------------

_VIEW_ONLINE = re.compile(r"view (it |this (e-?mail|issue|post) )?(in|on) (your |a )?(web )?browser|view online|read online|read on the web", re.I)


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


def parse_message(payload: bytes) -> ParsedDocument:
    msg = email.message_from_bytes(payload, policy=email.policy.default)
    if not isinstance(msg, EmailMessage) or not msg.keys():
        raise ReadError("not an e-mail message: no headers found")
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
    if body_part is None and not msg.is_multipart():
        body_part = msg
    content, ctype = "", "text"
    if body_part is not None:
        content = _part_text(body_part)
        ctype = "html" if body_part.get_content_subtype() == "html" else "text"
    if not subject and not content.strip():
        raise ReadError("message has neither a subject nor a readable text or HTML part")
    message_id = (_header(msg, "Message-ID") or "").strip("<> ") or None
    url = _view_online_link(content) if ctype == "html" else None
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


def _part_text(part: Message) -> str:
    """Decoded text of a MIME part, surviving wrong or unknown charset labels."""
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content
    except (LookupError, UnicodeError, AssertionError, KeyError, ValueError):
        pass
    raw = part.get_payload(decode=True) or b""
    if isinstance(raw, str):
        return raw
    charset = part.get_content_charset() or "utf-8"
    for candidate in (charset, "utf-8", "cp1252"):
        try:
            return raw.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return raw.decode("latin-1")


def _view_online_link(html: str) -> str | None:
    soup = BeautifulSoup(html, "html.parser")
    for a in soup.find_all("a", href=True):
        if _VIEW_ONLINE.search(a.get_text(" ", strip=True)) and a["href"].startswith(("http://", "https://")):
            return a["href"]
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


def _plain(value: Any) -> str:
    """Text of a title-like value: tags dropped, entities decoded, spaces collapsed."""
    if not value:
        return ""
    text = str(value)
    if "<" in text or "&" in text:
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
