"""Atom 1.0 feeds (RFC 4287): every digest in feed.xml, the events of a topic in topics/<id>.xml.

Pure functions from records to XML text. Ids are ``tag:`` URIs (RFC 4151)
built from an authority and the digest or event key, so they never change
when a digest is rendered again. The authority is the host of
``digest.site_url``; without one it is a name made from a hash of the output
folder's absolute path (``<hash>.pipeline.invalid``), which stays the same
from run to run and differs from one installation to another. ``updated``
is the time the content last changed, not the time of the run, so an
unchanged feed keeps its bytes. Links come from ``digest.site_url``; without
one they are relative to the feed's own location, which RFC 4287 allows.

feed.xml has an entry for every recorded digest. The newest
``FULL_CONTENT_ENTRIES`` carry the whole digest as their content; older ones
carry their lead and link only, so the file stays a reasonable size after
years of digests.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .render import Links, SiteInfo, safe_url

if TYPE_CHECKING:
    from .pages import TopicPage
    from .store_digests import DigestEntry

ATOM = "http://www.w3.org/2005/Atom"
ET.register_namespace("", ATOM)
TAG_DATE = "2026"  # the date part of the tag: URIs; fixed so ids never change
FULL_CONTENT_ENTRIES = 30  # newest entries of feed.xml that carry the whole digest


def rfc3339(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def tag_authority(site: SiteInfo) -> str:
    """The authority of the tag: URIs: the site's host, else a name unique to this installation."""
    host = urlsplit(site.url).hostname if site.url else None
    if host:
        return host
    token = hashlib.sha256(site.install.encode("utf-8")).hexdigest()[:16]
    return f"{token}.pipeline.invalid"  # .invalid (RFC 2606): a DNS name that can belong to no one


def tag_uri(site: SiteInfo, specific: str) -> str:
    return f"tag:{tag_authority(site)},{TAG_DATE}:{specific}"


def _el(parent: ET.Element, name: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM}}}{name}", {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = text
    return el


def _link(parent: ET.Element, rel: str, href: str, media: str) -> None:
    _el(parent, "link", rel=rel, href=href or "./", type=media)


def _feed(site: SiteInfo, *, feed_id: str, title: str, subtitle: str, updated: datetime, self_href: str,
          alternate_href: str) -> ET.Element:
    feed = ET.Element(f"{{{ATOM}}}feed")
    if site.base:
        feed.set("{http://www.w3.org/XML/1998/namespace}base", site.base)
    _el(feed, "id", feed_id)
    _el(feed, "title", title, type="text")
    _el(feed, "subtitle", subtitle, type="text")
    _el(feed, "updated", rfc3339(updated))
    _link(feed, "self", self_href, "application/atom+xml")
    _link(feed, "alternate", alternate_href, "text/html")
    author = _el(feed, "author")
    _el(author, "name", site.title)
    _el(feed, "generator", "pipeline")
    return feed


def _text(feed: ET.Element) -> str:
    ET.indent(feed, space="  ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="unicode") + "\n"


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def digest_feed(digests: Sequence[DigestEntry], site: SiteInfo, *, full: int = FULL_CONTENT_ENTRIES) -> str:
    """feed.xml: one entry per digest, most recently changed first; the newest ``full`` with their content."""
    links = Links(site.base or "", "html")
    entries = sorted(digests, key=lambda d: (d.updated, d.date, d.period), reverse=True)
    feed = _feed(
        site,
        feed_id=tag_uri(site, "digests"),
        title=site.title,
        subtitle="Daily and weekly digests",
        updated=max((d.updated for d in entries), default=EPOCH),
        self_href=links.feed(),
        alternate_href=links.index(),
    )
    for n, d in enumerate(entries):
        entry = _el(feed, "entry")
        _el(entry, "id", tag_uri(site, f"digest/{d.period}/{d.date}"))
        _el(entry, "title", d.title, type="text")
        _el(entry, "updated", rfc3339(d.updated))
        _el(entry, "published", rfc3339(d.created))
        _link(entry, "alternate", links.digest(d.period, d.date), "text/html")
        with_content = n < full and bool(d.content)
        if d.lead or not with_content:  # an entry without content needs a summary (RFC 4287, 4.1.1.1)
            _el(entry, "summary", d.lead or d.title, type="text")
        if with_content:
            _el(entry, "content", d.content, type="html")
    return _text(feed)


def topic_feed(topic: TopicPage, site: SiteInfo) -> str:
    """topics/<id>.xml: the topic's recent events, each linking to its event page."""
    here = "" if site.base is None else site.base
    page_links = Links(here if site.base else "../", "html")
    entries = sorted(topic.events, key=lambda e: (e.updated, e.id), reverse=True)
    feed = _feed(
        site,
        feed_id=tag_uri(site, f"topic/{topic.id}"),
        title=f"{site.title}: {topic.label}",
        subtitle=f"Recent events about {topic.label}",
        updated=max((e.updated for e in entries), default=EPOCH),
        self_href=(site.base or "") + f"topics/{topic.id}.xml" if site.base else f"{topic.id}.xml",
        alternate_href=(site.base or "") + f"topics/{topic.id}.html" if site.base else f"{topic.id}.html",
    )
    for e in entries:
        entry = _el(feed, "entry")
        _el(entry, "id", tag_uri(site, f"event/{e.id}"))
        _el(entry, "title", e.title, type="text")
        _el(entry, "updated", rfc3339(e.updated))
        _link(entry, "alternate", page_links.event(e.id), "text/html")
        if safe_url(e.url):
            _link(entry, "related", safe_url(e.url), "text/html")
        _el(entry, "summary", e.summary, type="text")
    return _text(feed)
