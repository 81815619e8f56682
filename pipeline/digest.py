"""Digest: choose the stories of a period, rank them and render the digest.

A digest covers the items first seen since the previous digest of the same
period: every item appears in one daily digest, whatever its publication
date, so a first run on old material still produces a full digest.

Windows: the daily digest dated D runs from D at ``digest.cutoff_hour``
(local time) to the next day at that hour; the weekly one from Monday at
that hour to the next Monday. ``digest_step`` takes the window that holds
``now`` (the digest so far), the newest window that has closed (``last``),
or the one named by ``date``, and gives it the items first seen before its
end (or before ``now``) that no other digest of the period holds. Running
the same window again renders it again, adding what arrived in between;
a file is only replaced when its bytes change.

A digest is frozen once it was mailed to an address: it is never rendered
again, so no later run can drop a story from it, and what arrives later goes
into the next digest. Only closed windows are mailed (deliver.py).

The files are written before the digest is recorded, so a crash in between
leaves no record, and the next run (or catch-up) makes the digest again.
Rendering lives in render.py, the pages and feeds around the digests in
pages.py and atom.py, e-mail delivery in deliver.py.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time as time_mod
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from .cluster import headline_of
from .pages import publish_site
from .render import digest_email, render_digest
from .config import Config, DigestConfig, RankConfig
from .models import PERIODS, Problem, StepResult, StoredItem, TopicRule
from .store import DigestRecord, Store
from .store_time import ts
from .summarizer import Summarizer

log = logging.getLogger(__name__)

TITLE_MAX = 150  # characters of a digest title (and e-mail subject), at most
TITLE_STORY_MAX = 60  # characters of one story's title in it, at most
TITLE_STORY_MIN = 30  # ... shortened down to this when the title is still too long
PAUSE_ENV = "PIPELINE_TEST_DIGEST_PAUSE"  # tests only: seconds to wait between writing files and recording
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


def short_title(title: str, limit: int = TITLE_STORY_MAX) -> str:
    """The title on one line, at most ``limit`` characters: cut at a word boundary, ending in '…'."""
    title = " ".join(title.split()).rstrip(".")
    if len(title) <= limit:
        return title
    cut = title[:limit].rsplit(" ", 1)[0] if " " in title[:limit] else title[:limit - 1]
    return cut.rstrip(",;:.-–— ") + "…"


def digest_title(prefix: str, titles: list[str], *, limit: int = TITLE_MAX) -> str:
    """'Prefix: a; b; c', each story title shortened so the whole stays within ``limit`` characters."""
    head = f"{prefix}: "
    for each in range(TITLE_STORY_MAX, TITLE_STORY_MIN - 1, -1):
        title = head + "; ".join(short_title(t, each) for t in titles)
        if len(title) <= limit:
            return title
    return title


def story_score(*, tier: int, sources: int, age_days: float, topic_weight: float, rank: RankConfig) -> float:
    """A story's rank in a digest: its headline's tier, how many sources reported it, how fresh it
    is, each weighted by [rank], and all of it times its topic's weight."""
    freshness = max(0.0, 1 - age_days / rank.recency_days)
    base = rank.tier * TIER_SCORE.get(tier, 1.0) + rank.sources * (sources - 1) + rank.recency * freshness
    return base * topic_weight


def _story(key: str, new_items: list[StoredItem], members: list[StoredItem], topic_ids: list[str], now: datetime,
           rank: RankConfig, weights: dict[str, float]) -> Story:
    head = headline_of(members)
    others = []
    seen_sources = {head.source_id}
    for m in sorted(members, key=lambda i: (i.tier, i.when, i.id)):
        if m.source_id not in seen_sources:
            seen_sources.add(m.source_id)
            # a newsletter that links to the headline's own page is named, not linked a second time
            others.append(StoryLink(m.source_name, m.tier, m.title, None if m.url == head.url else m.url))
    topic_counts: Counter[str] = Counter()
    for m in members:
        for place, t in enumerate(m.topics):
            topic_counts[t] += 3 - min(place, 2) + (1 if m.id == head.id else 0)
    ordered = sorted(topic_counts, key=lambda t: (-topic_counts[t], topic_ids.index(t) if t in topic_ids else 99, t))
    topic = next((t for t in ordered if t in topic_ids), OTHER_TOPIC[0])
    newest = max(m.when for m in members)
    age_days = max(0.0, (now - newest).total_seconds() / 86400)
    score = story_score(tier=head.tier, sources=len(seen_sources), age_days=age_days,
                        topic_weight=weights.get(topic, 1.0), rank=rank)
    return Story(
        key=key,
        title=head.title,
        url=head.url,
        summary="",  # filled in by build_digest once the stories that make the digest are known
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
    summarizer: Summarizer | None = None,
    rank: RankConfig | None = None,
) -> DigestView | None:
    """The digest of the given new items, or None when there are none.

    ``key`` names the digest (2026-04-13, 2026-W16); by default the period that holds ``now``.
    Each story's summary is the ``summarizer``'s summary of its headline item (default: extractive).
    """
    if not candidates:
        return None
    # a roundup split into its stories is told through them
    roundups = [i.id for i in candidates if i.children]
    candidates = [i for i in candidates if not i.children]
    if not candidates:
        return None
    groups: dict[str, list[StoredItem]] = {}
    for item in candidates:
        groups.setdefault(item.event_id or item.id, []).append(item)
    topic_ids = [t.id for t in topics]
    weights = {t.id: t.weight for t in topics}
    rank = rank or RankConfig()
    stories = [
        _story(key, new_items, members.get(key) or new_items, topic_ids, now, rank, weights)
        for key, new_items in groups.items()
    ]
    stories.sort(key=lambda s: (-s.score, -s.when.timestamp(), s.key))
    summarizer = summarizer or Summarizer()
    heads = {k: headline_of(members.get(k) or new_items) for k, new_items in groups.items()}
    stories = [replace(s, summary=summarizer.item(heads[s.key])) for s in stories[: cfg.max_items]]
    labels = {t.id: t.label for t in topics} | {OTHER_TOPIC[0]: OTHER_TOPIC[1]}
    order = topic_ids + [OTHER_TOPIC[0]]
    sections = tuple(
        Section(t, labels[t], tuple(s for s in stories if s.topic == t))
        for t in order
        if any(s.topic == t for s in stories)
    )
    headline_stories = [s for s in stories if s.kind != "digest"] or stories
    title = digest_title(cfg.site_title, [s.title for s in headline_stories[: cfg.title_stories]])
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
        item_ids=tuple(sorted({i for s in stories for i in s.new_item_ids} | set(roundups))),
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


def last_closed(period: str, when: datetime, cfg: DigestConfig) -> str:
    """The key of the newest digest whose window had closed by ``when`` (its end is ``when`` or earlier)."""
    start, _ = period_window(period, period_at(period, when, cfg), cfg)
    return period_at(period, start - timedelta(seconds=1), cfg)


def window_closed(period: str, key: str, cfg: DigestConfig, now: datetime) -> bool:
    return period_window(period, key, cfg)[1] <= now


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
    """The short 'nothing new' digest written when ``digest.nothing_new`` asks for one: its title says it."""
    return DigestView(
        period=period,
        key=key,
        heading_date=heading or heading_for(period, key),
        title=f"{cfg.site_title}: nothing new",
        lead="",
        sections=(),
        item_ids=(),
        story_count=0,
        source_count=0,
    )


# --- files ---------------------------------------------------------------------


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


# --- the step --------------------------------------------------------------------


def digest_step(
    store: Store,
    config: Config,
    now: datetime,
    *,
    period: str = "daily",
    date: str | None = None,
    last: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    deliver: bool | None = None,
    summarizer: Summarizer | None = None,
) -> StepResult:
    """Write one digest and the pages and feeds around it; then mail the due digests when asked.

    By default the digest of the window that holds ``now``, so far; ``last``
    takes the newest window that has closed, ``date`` the window of that day
    or week (catch-up). ``since`` and ``until`` make a one-off digest of the
    items first seen between them, written under ``range/`` and not recorded.
    A digest already mailed is left as it is.

    ``deliver`` (default: ``digest.email.on_digest``) then mails every due
    digest (see deliver.py): closed windows only, so a digest still open is
    mailed by the first delivery after its window closes.
    ``summarizer`` writes the summaries; by default one is built from
    ``[summarize]`` for this step (a command that writes several digests
    passes one, so the request budget holds for the whole run).
    """
    if summarizer is None:
        with Summarizer.from_config(config.summarize, store, now=now) as own:
            return digest_step(store, config, now, period=period, date=date, last=last, since=since, until=until,
                               deliver=deliver, summarizer=own)
    cfg = config.digest
    if since is not None or until is not None:
        return _one_off(store, config, since or datetime.min.replace(tzinfo=timezone.utc), until or now,
                        summarizer=summarizer)
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}")
    if date:
        key = parse_period_key(period, date)
    elif last:
        key = last_closed(period, now, cfg)
    else:
        key = period_at(period, now, cfg)
    result = write_digest(store, config, now, period=period, key=key, summarizer=summarizer)
    if not ((cfg.email.on_digest if deliver is None else deliver) and cfg.email.to):
        return result
    from .deliver import deliver_digests

    counts = dict(result.counts)
    if not window_closed(period, key, cfg, now) and result.counts.get("stories"):
        # asked for on purpose (--deliver): worth a warning; by digest.email.on_digest: a note
        log.log(logging.WARNING if deliver else logging.INFO,
                "the %s digest %s is still open until %s: not mailed now; the first delivery after that mails it",
                period, key, closes_at(period, key, cfg))
        counts["email still open"] = 1
    sent = deliver_digests(store, config, now)
    counts.update({f"email {k}": v for k, v in sent.counts.items()})
    return StepResult("digest", counts, result.problems + sent.problems, result.paths)


def closes_at(period: str, key: str, cfg: DigestConfig) -> str:
    """When the window of a digest closes, in the digest's time zone, for messages."""
    return period_window(period, key, cfg)[1].astimezone(cfg.tz).strftime("%Y-%m-%d %H:%M %Z")


def _pause_before_recording(path: Path) -> None:
    """For tests only: wait here, files written and nothing recorded, when PIPELINE_TEST_DIGEST_PAUSE is set."""
    seconds = os.environ.get(PAUSE_ENV)
    if seconds:
        log.warning("%s=%s: waiting before recording %s", PAUSE_ENV, seconds, path)
        time_mod.sleep(float(seconds))


def write_digest(store: Store, config: Config, now: datetime, *, period: str, key: str,
                 summarizer: Summarizer) -> StepResult:
    """Render the ``period`` digest ``key`` as of ``now`` (or its window's end), write it, record it.

    A digest already mailed is frozen and left alone. The files are written
    (each atomically) before the record is committed: a digest that is
    recorded always has its files.
    """
    cfg = config.digest
    digest_id = f"{period}:{key}"
    start, end = period_window(period, key, cfg)
    if start > now:
        problem = Problem(f"{period} digest {key}", "this period has not started yet")
        log.warning("%s", problem)
        return StepResult("digest", {"written": 0}, (problem,))
    if store.digest_mailed(digest_id):
        log.info("the %s digest %s was mailed already; it stays as it was mailed", period, key)
        return StepResult("digest", {"written": 0, "already mailed": 1})
    as_of = min(now, end)
    candidates = store.items_for_digest(period=period, date=key, until=as_of)
    members = store.event_members(i.event_id for i in candidates if i.event_id)
    view = build_digest(candidates, members, config.topics, period=period, now=as_of, cfg=cfg, key=key, rank=config.rank,
                        summarizer=summarizer)
    if view is None:
        if not cfg.nothing_new or store.digest(digest_id) is not None:
            log.info("no new items for the %s digest %s; nothing written", period, key)
            return StepResult("digest", {"written": 0, "stories": 0})
        view = empty_view(period, key, cfg)
    rendered = render_digest(view, cfg)
    files = digest_files(cfg.output_dir, period, key)
    record = DigestRecord(
        id=digest_id,
        period=period,
        date=key,
        title=view.title,
        path=str(files["md"].relative_to(cfg.output_dir)),
        content_hash=rendered.content_hash,
    )
    try:
        previous = store.digest_entry(digest_id)
    except KeyError:
        previous = None
    # the time the content last changed, as the record will keep it: the e-mail's Date
    updated = (previous.updated if previous is not None and previous.content_hash == rendered.content_hash
               else datetime.fromisoformat(ts(now)))
    outputs: dict[str, str | bytes] = {"md": rendered.markdown, "html": rendered.html, "txt": rendered.text}
    if view.story_count:
        message = digest_email(view, text=rendered.text, html=rendered.email_html, cfg=cfg, date=updated,
                               content_hash=rendered.content_hash)
        outputs["eml"] = message.as_bytes()
    written = [files[ext] for ext, data in outputs.items() if write_atomic(files[ext], data)]
    _pause_before_recording(files["md"])
    store.save_digest(record, view.item_ids, now, lead=view.lead, content=rendered.feed_html,
                      story_count=view.story_count)
    site = publish_site(store, config, summarizer=summarizer)
    log.info("%s %s (%d stories)", "wrote" if written else "unchanged", files["md"], view.story_count)
    return StepResult(
        "digest",
        {
            "written": int(bool(written)),
            "unchanged": int(not written),
            "stories": view.story_count,
            "pages": len(site.paths),
        },
        paths=(str(files["md"]),),
    )


def _one_off(store: Store, config: Config, since: datetime, until: datetime, *,
             summarizer: Summarizer) -> StepResult:
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
    view = build_digest(candidates, members, config.topics, period="range", now=until, cfg=cfg, key=key, rank=config.rank,
                        summarizer=summarizer)
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
