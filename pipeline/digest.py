"""Digest: choose the stories of a period, rank them and render the digest.

A digest covers the items first seen since the previous digest of the same
period: every item appears in one daily digest, whatever its publication
date, so a first run on old material still produces a full digest. The
digest for a date is rendered again when the same date is run again, and the
file is only replaced when its bytes change.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2

from .cluster import headline_of
from .config import Config, DigestConfig
from .models import StepResult, StoredItem, TopicRule
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
    )


def build_digest(
    candidates: list[StoredItem],
    members: dict[str, list[StoredItem]],
    topics: tuple[TopicRule, ...],
    *,
    period: str,
    now: datetime,
    cfg: DigestConfig,
) -> DigestView | None:
    """The digest of the given new items, or None when there are none."""
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
    return DigestView(
        period=period,
        key=period_key(period, local),
        heading_date=local.strftime("%A %d %B %Y") if period == "daily" else f"week {period_key(period, local)}",
        title=title,
        lead=lead + ".",
        sections=sections,
        item_ids=tuple(sorted(i for s in stories for i in s.new_item_ids)),
        story_count=len(stories),
        source_count=len(sources),
    )


# --- rendering -----------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def md_escape(text: str) -> str:
    """Text safe to place inline in Markdown: special characters escaped, one line."""
    text = " ".join(str(text).split())
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return re.sub(r"^([#+-]|\d+\.)(\s)", r"\\\1\2", text)


def md_url(url: str) -> str:
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


def template_environment(user_dir: Path | None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if user_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(user_dir)))
    loaders.append(jinja2.PackageLoader("pipeline", "templates"))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Markdown output; HTML templates escape explicitly
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = md_escape
    env.filters["md_url"] = md_url
    return env


def render_markdown(view: DigestView, env: jinja2.Environment) -> str:
    text = env.get_template("digest.md.j2").render(digest=view)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n"


def write_atomic(path: Path, text: str) -> bool:
    """Write through a temporary file and rename; return False when the bytes were already there."""
    data = text.encode("utf-8")
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


def digest_step(store: Store, config: Config, now: datetime, *, period: str = "daily") -> StepResult:
    cfg = config.digest
    key = period_key(period, now.astimezone(cfg.tz))
    candidates = store.items_for_digest(period=period, date=key, until=now)
    members = store.event_members(i.event_id for i in candidates if i.event_id)
    view = build_digest(candidates, members, config.topics, period=period, now=now, cfg=cfg)
    if view is None:
        log.info("no new items since the last %s digest; nothing written", period)
        return StepResult("digest", {"written": 0, "stories": 0})
    text = render_markdown(view, template_environment(cfg.templates))
    path = cfg.output_dir / period / f"{view.key}.md"
    changed = write_atomic(path, text)
    record = DigestRecord(
        id=f"{period}:{view.key}",
        period=period,
        date=view.key,
        title=view.title,
        path=str(path.relative_to(cfg.output_dir)),
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
    )
    store.save_digest(record, view.item_ids, now)
    log.info("%s %s (%d stories)", "wrote" if changed else "unchanged", path, view.story_count)
    return StepResult(
        "digest",
        {"written": int(changed), "unchanged": int(not changed), "stories": view.story_count},
        paths=(str(path),),
    )
