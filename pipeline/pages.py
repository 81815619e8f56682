"""The pages around the digests: one per event, one per topic, an index and the Atom feeds.

``build_site`` is pure (stored records in, page records out); ``publish_site``
reads the store, renders every page in Markdown and HTML, and writes only the
files whose bytes changed. Pages cover the events that some digest included,
so every link from a digest to an event page resolves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .atom import digest_feed, topic_feed
from .cluster import headline_of
from .config import Config
from .models import StepResult, StoredItem, TopicRule
from .render import (
    Links,
    SiteInfo,
    html_environment,
    safe_name,
    template_environment,
    tidy_html,
    tidy_markdown,
)
from .store import Store
from .store_digests import DigestEntry
from .summarizer import Summarizer

log = logging.getLogger(__name__)

TOPIC_PAGE_EVENTS = 50  # events listed on a topic page and in its feed


@dataclass(frozen=True)
class SourceRef:
    source: str
    tier: int
    title: str
    url: str | None


@dataclass(frozen=True)
class TopicRef:
    id: str
    label: str


@dataclass(frozen=True)
class RelatedEvent:
    id: str
    title: str
    summary: str
    has_page: bool


@dataclass(frozen=True)
class EventPage:
    id: str
    title: str
    url: str | None
    summary: str  # the event summary: names the kind of piece, its source and tier, and the other sources
    source: str
    tier: int
    kind: str
    others: tuple[SourceRef, ...]
    topics: tuple[TopicRef, ...]
    related: tuple[RelatedEvent, ...]
    when: datetime  # newest member's time
    updated: datetime  # when the newest member was first seen


@dataclass(frozen=True)
class TopicPage:
    id: str
    label: str
    events: tuple[EventPage, ...]


@dataclass(frozen=True)
class TopicSummary:
    id: str
    label: str
    count: int


@dataclass(frozen=True)
class IndexPage:
    digests: tuple[DigestEntry, ...]
    topics: tuple[TopicSummary, ...]


@dataclass(frozen=True)
class Site:
    events: tuple[EventPage, ...]
    topics: tuple[TopicPage, ...]
    index: IndexPage


def _event_page(
    event_id: str,
    members: list[StoredItem],
    related: list[tuple[str, list[StoredItem]]],
    topics: tuple[TopicRule, ...],
    page_ids: set[str],
    summarizer: Summarizer,
) -> EventPage:
    head = headline_of(members)
    others: list[SourceRef] = []
    seen = {head.source_id}
    for m in sorted(members, key=lambda i: (i.tier, i.when, i.id)):
        if m.source_id not in seen:
            seen.add(m.source_id)
            others.append(SourceRef(m.source_name, m.tier, m.title, m.url))
    member_topics = {t for m in members for t in m.topics}
    rel: list[RelatedEvent] = []
    for rel_id, rel_members in related:
        if rel_members:
            rel_head = headline_of(rel_members)
            rel.append(RelatedEvent(rel_id, rel_head.title, summarizer.event(rel_members), rel_id in page_ids))
    return EventPage(
        id=event_id,
        title=head.title,
        url=head.url,
        summary=summarizer.event(members),
        source=head.source_name,
        tier=head.tier,
        kind=head.kind or "news",
        others=tuple(others),
        topics=tuple(TopicRef(t.id, t.label) for t in topics if t.id in member_topics),
        related=tuple(rel),
        when=max(m.when for m in members),
        updated=max(m.first_seen for m in members),
    )


def build_site(
    members: dict[str, list[StoredItem]],
    links: dict[str, list[str]],
    digests: list[DigestEntry],
    topics: tuple[TopicRule, ...],
    summarizer: Summarizer | None = None,
) -> Site:
    """Event, topic and index pages from the events' members and related-event links.

    Summaries come from ``summarizer`` (default: extractive).
    """
    summarizer = summarizer or Summarizer()
    page_ids = {e for e, m in members.items() if m}
    events = [
        _event_page(e, members[e], [(r, members.get(r, [])) for r in links.get(e, [])], topics, page_ids,
                    summarizer)
        for e in sorted(page_ids)
    ]
    newest_first = sorted(events, key=lambda e: (e.when, e.id), reverse=True)
    topic_pages = tuple(
        TopicPage(t.id, t.label, tuple(e for e in newest_first if any(r.id == t.id for r in e.topics))[:TOPIC_PAGE_EVENTS])
        for t in topics
    )
    topic_pages = tuple(t for t in topic_pages if t.events)
    counts = {t.id: sum(1 for e in events if any(r.id == t.id for r in e.topics)) for t in topic_pages}
    return Site(
        events=tuple(events),
        topics=topic_pages,
        index=IndexPage(
            digests=tuple(sorted(digests, key=lambda d: (d.date, d.period), reverse=True)),
            topics=tuple(TopicSummary(t.id, t.label, counts[t.id]) for t in topic_pages),
        ),
    )


def site_info(config: Config) -> SiteInfo:
    """The site's name and URL; without a URL, the output folder tells this installation's feed ids apart."""
    cfg = config.digest
    return SiteInfo(title=cfg.site_title, url=cfg.site_url, install=str(cfg.output_dir.resolve()))


def render_site(site: Site, config: Config) -> dict[Path, str]:
    """Every page and feed of the site, by path under the output folder."""
    cfg = config.digest
    md_env = template_environment(cfg.templates)
    html_env = html_environment(cfg.templates)
    info = site_info(config)
    out: dict[Path, str] = {}
    up = {"md": Links("../", "md"), "html": Links("../", "html")}
    here = {"md": Links("", "md"), "html": Links("", "html")}
    for event in site.events:
        name = safe_name(event.id, fallback="event")
        out[Path("events", f"{name}.md")] = tidy_markdown(
            md_env.get_template("event.md.j2").render(event=event, site=info, links=up["md"])
        )
        out[Path("events", f"{name}.html")] = tidy_html(
            html_env.get_template("event.html.j2").render(event=event, site=info, links=up["html"])
        )
    for topic in site.topics:
        name = safe_name(topic.id, fallback="topic")
        out[Path("topics", f"{name}.md")] = tidy_markdown(
            md_env.get_template("topic.md.j2").render(topic=topic, site=info, links=up["md"])
        )
        out[Path("topics", f"{name}.html")] = tidy_html(
            html_env.get_template("topic.html.j2").render(topic=topic, site=info, links=up["html"])
        )
        out[Path("topics", f"{name}.xml")] = topic_feed(topic, info)
    out[Path("index.md")] = tidy_markdown(
        md_env.get_template("index.md.j2").render(index=site.index, site=info, links=here["md"])
    )
    out[Path("index.html")] = tidy_html(
        html_env.get_template("index.html.j2").render(index=site.index, site=info, links=here["html"])
    )
    out[Path("feed.xml")] = digest_feed(site.index.digests, info)  # every digest
    return out


def publish_site(store: Store, config: Config, *, summarizer: Summarizer | None = None) -> StepResult:
    """Write the event and topic pages, the index and the feeds; return the paths that changed.

    ``summarizer`` writes the summaries; by default one is built from ``[summarize]``.
    """
    from .digest import write_atomic

    if summarizer is None:
        with Summarizer.from_config(config.summarize, store, now=datetime.now(timezone.utc)) as own:
            return publish_site(store, config, summarizer=own)
    event_ids = store.digested_event_ids()
    links = {e: [r for r, _ in store.related_events(e)] for e in event_ids}
    members = store.event_members(set(event_ids) | {r for rs in links.values() for r in rs})
    site = build_site(members, links, store.digest_entries(), config.topics, summarizer)
    written = []
    for rel, text in render_site(site, config).items():
        path = config.digest.output_dir / rel
        if write_atomic(path, text):
            written.append(str(path))
    log.info("site: %d pages and feeds changed", len(written))
    return StepResult("site", {"written": len(written)}, paths=tuple(written))
