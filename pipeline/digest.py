"""Digest: choose the stories of a period, rank them and render the digest.

A digest covers the items first seen since the previous digest of the same
period: every item appears in one daily digest, whatever its publication
date, so a first run on old material still produces a full digest. The
digest for a date is rendered again when the same date is run again, and the
file is only replaced when its bytes change.

Windows: the daily digest dated D closes at D + 1 day, ``digest.cutoff_hour``
(local time); the weekly one at the next Monday at that hour. ``digest_step``
takes the window that holds ``now``, or the one named by ``date`` (catch-up),
and holds the items first seen before it closed that no other digest of the
period holds. Rendering lives in render.py, the pages and feeds around the
digests in pages.py and atom.py, e-mail delivery in deliver.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import jinja2
from bs4 import BeautifulSoup

from .cluster import headline_of
from .pages import publish_site
from .render import (
    Links,
    SiteInfo,
    build_email,
    html_environment,
    inline_css,
    mail_domain,
    md_escape,
    md_url,
    message_id,
    template_environment,
    tidy_html,
    tidy_markdown,
)
from .config import Config, DigestConfig
from .models import Problem, StepResult, StoredItem, TopicRule
from .store import DigestRecord, Store
from .summarize import summarize

log = logging.getLogger(__name__)

PERIODS = ("daily", "weekly")
TIER_SCORE = {1: 3.0, 2: 2.0, 3: 1.0}
OTHER_TOPIC = ("other", "Other stories")


@dataclass(frozen=True)
class StoryLink:
    source: str
    tier: int
    title: str
    url: str | None


@dataclass(frozen=True)
class Story:
    key: str  # event id, or the item id of an item in no event
    title: str
    url: str | None
    summary: str
    source: str
    tier: int
    kind: str
    topic: str
    others: tuple[StoryLink, ...]
    new_item_ids: tuple[str, ...]
    score: float
    when: datetime
    event_id: str | None = None  # the event this story is, when it has a page


@dataclass(frozen=True)
class Section:
    topic_id: str
    label: str
    stories: tuple[Story, ...]


@dataclass(frozen=True)
class DigestView:
    period: str
    key: str  # 2026-04-13 or 2026-W16
    heading_date: str
    title: str
    lead: str
    sections: tuple[Section, ...]
    item_ids: tuple[str, ...]
    story_count: int
    source_count: int


def period_key(period: str, local: datetime) -> str:
    if period == "weekly":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.strftime("%Y-%m-%d")


def heading_for(period: str, key: str) -> str:
    """How a digest names its period: 'Monday 13 April 2026' or 'week 2026-W16'."""
    if period == "daily":
        return datetime.strptime(key, "%Y-%m-%d").strftime("%A %d %B %Y")
    if period == "weekly":
        return f"week {key}"
    return key


def short_title(title: str, limit: int = 80) -> str:
    title = title.strip().rstrip(".")
    if len(title) <= limit:
        return title
    return title[:limit].rsplit(" ", 1)[0].rstrip(",;:-") + "..."


def _story(key: str, new_items: list[StoredItem], members: list[StoredItem], topic_ids: list[str], now: datetime) -> Story:
    head = headline_of(members)
    others = []
    seen_sources = {head.source_id}
    for m in sorted(members, key=lambda i: (i.tier, i.when, i.id)):
        if m.source_id not in seen_sources:
            seen_sources.add(m.source_id)
            others.append(StoryLink(m.source_name, m.tier, m.title, m.url))
    topic_counts: Counter[str] = Counter()
    for m in members:
        for rank, t in enumerate(m.topics):
            topic_counts[t] += 3 - min(rank, 2) + (1 if m.id == head.id else 0)
    ordered = sorted(topic_counts, key=lambda t: (-topic_counts[t], topic_ids.index(t) if t in topic_ids else 99, t))
    topic = next((t for t in ordered if t in topic_ids), OTHER_TOPIC[0])
    newest = max(m.when for m in members)
    age_days = max(0.0, (now - newest).total_seconds() / 86400)
    score = TIER_SCORE.get(head.tier, 1.0) + 2.0 * (len(seen_sources) - 1) + max(0.0, 1 - age_days / 7)
    return Story(
        key=key,
        title=head.title,
        url=head.url,
        summary=summarize(head),
        source=head.source_name,
        tier=head.tier,
        kind=head.kind or "news",
        topic=topic,
        others=tuple(others),
        new_item_ids=tuple(sorted(i.id for i in new_items)),
        score=round(score, 4),
        when=newest,
        event_id=head.event_id,
    )


def build_digest(
    candidates: list[StoredItem],
    members: dict[str, list[StoredItem]],
    topics: tuple[TopicRule, ...],
    *,
    period: str,
    now: datetime,
    cfg: DigestConfig,
    key: str | None = None,
) -> DigestView | None:
    """The digest of the given new items, or None when there are none.

    ``key`` names the digest (2026-04-13, 2026-W16); by default the period that holds ``now``.
    """
    if not candidates:
        return None
    groups: dict[str, list[StoredItem]] = {}
    for item in candidates:
        groups.setdefault(item.event_id or item.id, []).append(item)
    topic_ids = [t.id for t in topics]
    stories = [
        _story(key, new_items, members.get(key) or new_items, topic_ids, now) for key, new_items in groups.items()
    ]
    stories.sort(key=lambda s: (-s.score, -s.when.timestamp(), s.key))
    stories = stories[: cfg.max_items]
    labels = {t.id: t.label for t in topics} | {OTHER_TOPIC[0]: OTHER_TOPIC[1]}
    order = topic_ids + [OTHER_TOPIC[0]]
    sections = tuple(
        Section(t, labels[t], tuple(s for s in stories if s.topic == t))
        for t in order
        if any(s.topic == t for s in stories)
    )
    headline_stories = [s for s in stories if s.kind != "digest"] or stories
    title = "Data Points: " + "; ".join(short_title(s.title) for s in headline_stories[: cfg.title_stories])
    local = now.astimezone(cfg.tz)
    sources = {s.source for s in stories} | {o.source for s in stories for o in s.others}
    shared = sum(1 for s in stories if s.others)
    lead = f"{len(stories)} {'story' if len(stories) == 1 else 'stories'} from {len(sources)} " + (
        "source" if len(sources) == 1 else "sources"
    )
    if shared:
        lead += f"; {shared} reported by more than one source"
    key = key or period_key(period, local)
    return DigestView(
        period=period,
        key=key,
        heading_date=heading_for(period, key),
        title=title,
        lead=lead + ".",
        sections=sections,
        item_ids=tuple(sorted(i for s in stories for i in s.new_item_ids)),
        story_count=len(stories),
        source_count=len(sources),
    )


# --- periods ------------------------------------------------------------------

_KEY = re.compile(r"^(\d{4}-\d{2}-\d{2}|\d{4}-W\d{2}|\d{8}T\d{4}Z-\d{8}T\d{4}Z)$")


def period_at(period: str, when: datetime, cfg: DigestConfig) -> str:
    """The key of the digest whose window holds ``when``.

    A daily digest dated D holds what was first seen from D at ``cutoff_hour``
    (local time) to the next day at that hour; a weekly one, the ISO week from
    Monday at ``cutoff_hour``. Before the cut-off hour, a run still belongs to
    the previous day's (or week's) digest.
    """
    local = when.astimezone(cfg.tz) - timedelta(hours=cfg.cutoff_hour)
    return period_key(period, local)


def period_window(period: str, key: str, cfg: DigestConfig) -> tuple[datetime, datetime]:
    """Start and end (UTC, end excluded) of the digest ``key`` of ``period``."""
    if period == "weekly":
        year, week = key.split("-W")
        first = date.fromisocalendar(int(year), int(week), 1)
        days = 7
    else:
        first = date.fromisoformat(key)
        days = 1
    start = datetime.combine(first, time(cfg.cutoff_hour), tzinfo=cfg.tz)
    end = datetime.combine(first + timedelta(days=days), time(cfg.cutoff_hour), tzinfo=cfg.tz)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def parse_period_key(period: str, text: str) -> str:
    """The digest key named by ``--date``: YYYY-MM-DD, or for weekly digests also YYYY-Www."""
    text = text.strip()
    if period == "weekly" and re.fullmatch(r"\d{4}-W\d{2}", text):
        year, week = text.split("-W")
        date.fromisocalendar(int(year), int(week), 1)  # raises ValueError when there is no such week
        return text
    day = date.fromisoformat(text)
    if period == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()


def range_key(since: datetime, until: datetime) -> str:
    fmt = "%Y%m%dT%H%MZ"
    return f"{since.astimezone(timezone.utc):{fmt}}-{until.astimezone(timezone.utc):{fmt}}"


def empty_view(period: str, key: str, cfg: DigestConfig, heading: str | None = None) -> DigestView:
    """The short 'nothing new' digest written when ``digest.nothing_new`` asks for one."""
    return DigestView(
        period=period,
        key=key,
        heading_date=heading or heading_for(period, key),
        title=f"{cfg.site_title}: nothing new",
        lead=f"No new items since the previous {period} digest.",
        sections=(),
        item_ids=(),
        story_count=0,
        source_count=0,
    )


# --- rendering -----------------------------------------------------------------


def render_markdown(view: DigestView, env: jinja2.Environment, *, site: SiteInfo | None = None,
                    links: Links | None = None) -> str:
    text = env.get_template("digest.md.j2").render(digest=view, site=site or SiteInfo(), links=links or Links(None, "md"))
    return tidy_markdown(text)


def render_text(view: DigestView, env: jinja2.Environment, *, site: SiteInfo, links: Links) -> str:
    return tidy_markdown(env.get_template("digest.txt.j2").render(digest=view, site=site, links=links))


def render_html(view: DigestView, env: jinja2.Environment, *, site: SiteInfo, links: Links) -> str:
    return tidy_html(env.get_template("digest.html.j2").render(digest=view, site=site, links=links))


def digest_email(view: DigestView, *, text: str, html: str, cfg: DigestConfig, date: datetime, content_hash: str,
                 to: tuple[str, ...] | None = None) -> EmailMessage:
    """The digest as a multipart/alternative e-mail with its CSS inlined."""
    email_cfg = cfg.email
    return build_email(
        subject=view.title,
        text=text,
        html=inline_css(html),
        sender=email_cfg.sender,
        sender_name=cfg.site_title,
        to=email_cfg.to if to is None else to,
        date=date,
        msg_id=message_id(f"{view.period}-{view.key}", content_hash, mail_domain(cfg.site_url, email_cfg.sender)),
    )


def write_atomic(path: Path, text: str | bytes) -> bool:
    """Write through a temporary file and rename; return False when the bytes were already there."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def digest_files(output_dir: Path, period: str, key: str) -> dict[str, Path]:
    """The files of one digest, by format. The key is checked so no name can leave its folder."""
    if period not in (*PERIODS, "range") or not _KEY.match(key):
        raise ValueError(f"not a digest name: {period}/{key}")
    base = output_dir / period / key
    return {ext: base.with_name(f"{key}.{ext}") for ext in ("md", "html", "txt", "eml")}


@dataclass(frozen=True)
class RenderedDigest:
    markdown: str
    html: str
    text: str
    email_html: str  # the page with absolute links (or none), before its CSS is inlined
    feed_html: str  # the HTML body for feed entries, with absolute links only
    content_hash: str


def render_digest(view: DigestView, cfg: DigestConfig) -> RenderedDigest:
    md_env = template_environment(cfg.templates)
    html_env = html_environment(cfg.templates)
    site = SiteInfo(title=cfg.site_title, url=cfg.site_url)
    markdown = render_markdown(view, md_env, site=site, links=Links("../", "md"))
    page = render_html(view, html_env, site=site, links=Links("../", "html"))
    absolute = Links(site.base, "html")
    text = render_text(view, md_env, site=site, links=absolute)
    feed_page = render_html(view, html_env, site=site, links=absolute)
    return RenderedDigest(
        markdown=markdown,
        html=page,
        text=text,
        email_html=feed_page,
        feed_html=body_of(feed_page),
        content_hash=hashlib.sha256(markdown.encode()).hexdigest(),
    )


def body_of(page: str) -> str:
    """The inside of the page's card (else its body): what a feed entry shows."""
    soup = BeautifulSoup(page, "html.parser")
    part = soup.select_one("div.card") or soup.body or soup
    return part.decode_contents().strip() + "\n"


# --- the step --------------------------------------------------------------------


def digest_step(
    store: Store,
    config: Config,
    now: datetime,
    *,
    period: str = "daily",
    date: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    deliver: bool | None = None,
) -> StepResult:
    """Write one digest and the pages and feeds around it.

    ``date`` picks a past period (catch-up); by default the period that holds
    ``now``. ``since`` and ``until`` make a one-off digest of the items first
    seen between them, written under ``range/`` and not recorded. ``deliver``
    mails the digest to ``digest.email.to`` (default: ``digest.email.on_digest``).
    """
    cfg = config.digest
    if since is not None or until is not None:
        return _one_off(store, config, since or datetime.min.replace(tzinfo=timezone.utc), until or now)
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}")
    key = parse_period_key(period, date) if date else period_at(period, now, cfg)
    start, end = period_window(period, key, cfg)
    if start > now:
        problem = Problem(f"{period} digest {key}", "this period has not started yet")
        log.warning("%s", problem)
        return StepResult("digest", {"written": 0}, (problem,))
    as_of = min(now, end)
    candidates = store.items_for_digest(period=period, date=key, until=as_of)
    members = store.event_members(i.event_id for i in candidates if i.event_id)
    view = build_digest(candidates, members, config.topics, period=period, now=as_of, cfg=cfg, key=key)
    if view is None:
        if not cfg.nothing_new or store.digest(f"{period}:{key}") is not None:
            log.info("no new items for the %s digest %s; nothing written", period, key)
            return StepResult("digest", {"written": 0, "stories": 0})
        view = empty_view(period, key, cfg)
    rendered = render_digest(view, cfg)
    files = digest_files(cfg.output_dir, period, key)
    record = DigestRecord(
        id=f"{period}:{key}",
        period=period,
        date=key,
        title=view.title,
        path=str(files["md"].relative_to(cfg.output_dir)),
        content_hash=rendered.content_hash,
    )
    store.save_digest(record, view.item_ids, now, lead=view.lead, content=rendered.feed_html,
                      story_count=view.story_count)
    entry = store.digest_entry(record.id)
    outputs: dict[str, str | bytes] = {"md": rendered.markdown, "html": rendered.html, "txt": rendered.text}
    if view.story_count:
        message = digest_email(view, text=rendered.text, html=rendered.email_html, cfg=cfg, date=entry.updated,
                               content_hash=rendered.content_hash)
        outputs["eml"] = message.as_bytes()
    written = [files[ext] for ext, data in outputs.items() if write_atomic(files[ext], data)]
    site = publish_site(store, config)
    log.info("%s %s (%d stories)", "wrote" if written else "unchanged", files["md"], view.story_count)
    result = StepResult(
        "digest",
        {
            "written": int(bool(written)),
            "unchanged": int(not written),
            "stories": view.story_count,
            "pages": len(site.paths),
        },
        paths=(str(files["md"]),),
    )
    if (cfg.email.on_digest if deliver is None else deliver) and cfg.email.to and view.story_count:
        from .deliver import deliver_digests

        sent = deliver_digests(store, config, now, digest_ids=[record.id])
        result = StepResult(
            "digest",
            {**result.counts, **{f"email {k}": v for k, v in sent.counts.items()}},
            sent.problems,
            result.paths,
        )
    return result


def _one_off(store: Store, config: Config, since: datetime, until: datetime) -> StepResult:
    cfg = config.digest
    if since >= until:
        problem = Problem("--since/--until", "--since must be before --until")
        log.warning("%s", problem)
        return StepResult("digest", {"written": 0}, (problem,))
    candidates = store.items_first_seen_between(since, until)
    members = store.event_members(i.event_id for i in candidates if i.event_id)
    key = range_key(since, until)
    local = [t.astimezone(cfg.tz).strftime("%d %B %Y %H:%M") for t in (since, until)]
    heading = f"{local[0]} to {local[1]}" if since.year > 1 else f"until {local[1]}"
    view = build_digest(candidates, members, config.topics, period="range", now=until, cfg=cfg, key=key)
    if view is None:
        return StepResult("digest", {"written": 0, "stories": 0})
    view = replace(view, heading_date=heading)
    rendered = render_digest(view, cfg)
    files = digest_files(cfg.output_dir, "range", key)
    outputs: dict[str, str | bytes] = {"md": rendered.markdown, "html": rendered.html, "txt": rendered.text}
    outputs["eml"] = digest_email(view, text=rendered.text, html=rendered.email_html, cfg=cfg, date=until,
                                  content_hash=rendered.content_hash).as_bytes()
    written = [files[ext] for ext, data in outputs.items() if write_atomic(files[ext], data)]
    return StepResult(
        "digest",
        {"written": int(bool(written)), "unchanged": int(not written), "stories": view.story_count},
        paths=(str(files["md"]),),
    )
