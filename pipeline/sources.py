"""Sources: read subscriptions from OPML, and decide who published a document.

A document is matched to a configured source by its feed URL, sender address,
mailing-list id or domain; an unknown publisher becomes a new source with the
default tier.
"""

from __future__ import annotations

import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from urllib.parse import urlsplit

from .models import KINDS, SourceHint, Source


class OpmlError(ValueError):
    pass


def slugify(text: str, fallback: str = "source") -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:60].strip("-") or fallback


def domain_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url if "//" in url else "//" + url).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.lower()
    return host[4:] if host.startswith("www.") else host


def _minutes(text: str | None) -> float | None:
    """A min_interval attribute: minutes, 0 or more; anything else is ignored."""
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value < float("inf") else None


def read_opml(data: bytes, *, default_tier: int = 3) -> list[Source]:
    """Feeds listed in an OPML file, with tier, kind, split and min_interval (minutes between two
    fetches) from our own attributes."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        line, col = exc.position
        raise OpmlError(f"not valid XML: line {line}, column {col}: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    if root.tag.lower() != "opml":
        raise OpmlError(f"not an OPML file: the root element is <{root.tag}>")
    sources: list[Source] = []
    seen: set[str] = set()

    def walk(node: ET.Element, category: str | None) -> None:
        for outline in node.findall("outline"):
            url = outline.get("xmlUrl")
            title = outline.get("title") or outline.get("text") or ""
            if not url:
                walk(outline, title or category)
                continue
            tier_text = outline.get("tier", "")
            tier = int(tier_text) if tier_text in ("1", "2", "3") else default_tier
            kind = outline.get("kind") if outline.get("kind") in KINDS else None
            split = outline.get("split") if outline.get("split") in ("always", "never") else "auto"
            min_interval = _minutes(outline.get("min_interval"))
            base = slugify(title or domain_of(url) or "feed")
            sid, n = base, 2
            while sid in seen:
                sid, n = f"{base}-{n}", n + 1
            seen.add(sid)
            site = outline.get("htmlUrl") or None
            sources.append(
                Source(
                    id=sid,
                    name=title or domain_of(url) or url,
                    tier=tier,
                    kind=kind,
                    url=url,
                    site=site,
                    match=tuple(d for d in (domain_of(site),) if d),
                    origin="opml",
                    category=category,
                    split=split,
                    min_interval=min_interval,
                )
            )

    body = root.find("body")
    if body is None:
        raise OpmlError("OPML file has no <body>")
    walk(body, None)
    return sources


def write_opml(sources: Iterable[Source], *, title: str = "pipeline subscriptions") -> bytes:
    """OPML 2.0 of the sources that have a feed URL, grouped by category, with our tier and kind
    attributes; ``read_opml`` reads it back to the same sources."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    folders: dict[str, ET.Element] = {}
    for s in sorted((s for s in sources if s.url), key=lambda s: (s.category or "", s.tier, s.name.lower(), s.id)):
        parent = body
        if s.category:
            if s.category not in folders:
                folders[s.category] = ET.SubElement(body, "outline", text=s.category, title=s.category)
            parent = folders[s.category]
        attrs = {"type": "rss", "text": s.name, "title": s.name, "xmlUrl": s.url or "", "tier": str(s.tier)}
        if s.site:
            attrs["htmlUrl"] = s.site
        if s.kind:
            attrs["kind"] = s.kind
        if s.split != "auto":
            attrs["split"] = s.split
        if s.min_interval is not None:
            attrs["min_interval"] = f"{s.min_interval:g}"
        ET.SubElement(parent, "outline", attrs)
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"


FEED_TYPES = (
    "application/rss+xml", "application/atom+xml", "application/feed+json", "application/json",
    "application/rdf+xml", "application/xml", "text/xml",
)


def looks_like_feed(content_type: str | None, head: bytes) -> bool:
    """Whether a response is a feed rather than a web page, from its type and first bytes."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    start = head[:2048].lstrip().lower()
    if b"<html" in start or b"<!doctype html" in start:
        return False
    if any(tag in start for tag in (b"<rss", b"<feed", b"<rdf:rdf")):
        return True
    if start.startswith(b"{") and b"jsonfeed.org" in start:
        return True
    return ctype in ("application/rss+xml", "application/atom+xml", "application/feed+json", "application/rdf+xml")


def discover_feeds(html: bytes | str, base_url: str) -> list[tuple[str, str | None]]:
    """Feeds a web page announces with <link rel="alternate" type="...">: (absolute URL, title),
    in page order."""
    from urllib.parse import urljoin

    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    base_tag = soup.find("base", href=True)
    base = urljoin(base_url, str(base_tag["href"])) if base_tag else base_url
    found: list[tuple[str, str | None]] = []
    for link in soup.find_all("link", href=True):
        rel = link.get("rel") or []
        rels = {r.lower() for r in (rel if isinstance(rel, list) else str(rel).split())}
        ctype = str(link.get("type") or "").split(";")[0].strip().lower()
        if "alternate" in rels and ctype in FEED_TYPES[:5]:
            url = urljoin(base, str(link["href"]).strip())
            if url not in [u for u, _ in found]:
                found.append((url, str(link.get("title")) if link.get("title") else None))
    return found


def _hint_keys(hint: SourceHint, item_urls: Iterable[str | None]) -> tuple[set[str], list[str]]:
    exact = {k.lower() for k in (hint.feed_url, hint.email, hint.list_id) if k}
    domains = [d for d in (domain_of(hint.feed_url), domain_of(hint.site_url)) if d]
    if hint.email and "@" in hint.email:
        domains.append(hint.email.rsplit("@", 1)[1].lower())
    if not domains:
        # a document that does not say where it comes from (a page saved without its address):
        # the sites its items link to are the best guess; otherwise they are other publishers'
        domains += [d for d in (domain_of(u) for u in item_urls) if d]
    return exact, domains


def _domain_matches(domain: str, pattern: str) -> bool:
    return domain == pattern or domain.endswith("." + pattern)


def resolve_source(
    hint: SourceHint,
    known: Iterable[Source],
    *,
    item_urls: Iterable[str | None] = (),
    default_tier: int = 3,
) -> Source:
    """The known source this document belongs to, or a new one described by the hint."""
    known = list(known)
    exact, domains = _hint_keys(hint, item_urls)
    for s in known:  # exact keys first: a feed URL, an address, a list id
        keys = {m for m in s.match} | ({s.url.lower()} if s.url else set())
        if exact & keys:
            return s
    for d in domains:  # then the most specific domain
        for s in known:
            patterns = list(s.match) + [p for p in (domain_of(s.site), domain_of(s.url)) if p]
            if any(_domain_matches(d, p.lower()) for p in patterns if "@" not in p and "/" not in p):
                return s
    if hint.name:
        for s in known:
            if s.name.lower() == hint.name.lower():
                return s
    if hint.email or hint.list_id:
        # A sender is known by its address and list id only: many newsletters share a mail domain.
        name = hint.name or hint.list_id or hint.email or "Unknown sender"
        return Source(
            id=slugify(hint.list_id or hint.email or name),
            name=name,
            tier=default_tier,
            match=tuple(k.lower() for k in (hint.email, hint.list_id) if k),
            origin="auto",
        )
    domain = domains[0] if domains else None
    name = hint.name or domain or "Unknown source"
    return Source(
        id=slugify(domain or name),
        name=name,
        tier=default_tier,
        site=hint.site_url,
        url=hint.feed_url,
        match=(domain,) if domain else (),
        origin="auto",
    )
