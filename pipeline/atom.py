"""Atom 1.0 feeds (RFC 4287): every digest in feed.xml, the events of a topic in topics/<id>.xml.

Pure functions from records to XML text. Ids are ``tag:`` URIs (RFC 4151)
built from the site's host and the digest or event key, so they never change
when a digest is rendered again; ``updated`` is the time the content last
changed, not the time of the run, so an unchanged feed keeps its bytes.
Links come from ``digest.site_url``; without one they are relative to the
feed's own location, which RFC 4287 allows.
"""

from __future__ import annotations

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


def rfc3339(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def tag_uri(site: SiteInfo, specific: str) -> str:
    host = urlsplit(site.url).hostname if site.url else None
    return f"tag:{host or 'localhost'},{TAG_DATE}:{specific}"


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


def digest_feed(digests: Sequence[DigestEntry], site: SiteInfo) -> str:
    """feed.xml: one entry per digest, most recently changed first."""
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
    for d in entries:
        entry = _el(feed, "entry")
        _el(entry, "id", tag_uri(site, f"digest/{d.period}/{d.date}"))
        _el(entry, "title", d.title, type="text")
        _el(entry, "updated", rfc3339(d.updated))
        _el(entry, "published", rfc3339(d.created))
        _link(entry, "alternate", links.digest(d.period, d.date), "text/html")
        _el(entry, "summary", d.lead, type="text")
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
