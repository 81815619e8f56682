"""Records passed between stages.

Every record is a frozen dataclass: a stage receives them, builds new ones and
hands them on; nothing is mutated in place. Times are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

KINDS = ("news", "commentary", "op-ed", "announcement", "research", "digest", "guide")
PERIODS = ("daily", "weekly")  # the digests' periods


@dataclass(frozen=True)
class Source:
    """A publisher: a feed, a newsletter sender or a site."""

    id: str
    name: str
    tier: int = 3
    kind: str | None = None  # default kind of its items
    url: str | None = None  # feed URL to fetch, if any
    site: str | None = None  # home page
    match: tuple[str, ...] = ()  # domains, addresses and list ids that belong to it
    origin: str = "auto"  # config, opml, cli (added with `pipeline sources add`) or auto
    category: str | None = None  # OPML folder it was listed under
    split: str = "auto"  # roundups into stories: auto, always or never
    min_interval: float | None = None  # its own minutes between two fetches (default: fetch.min_interval)


@dataclass(frozen=True)
class SourceHint:
    """What a document says about who published it."""

    name: str | None = None
    site_url: str | None = None
    feed_url: str | None = None
    email: str | None = None
    list_id: str | None = None


@dataclass(frozen=True)
class RawDocument:
    """An input exactly as it arrived, kept so normalizing can be re-run."""

    id: str  # sha256 of the payload
    origin: str  # file path or URL
    media: str  # feed, email, mbox, html, markdown or text
    payload: bytes
    received: datetime
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Entry:
    """One item as a reader found it, before cleaning."""

    guid: str | None
    url: str | None
    title: str | None
    author: str | None
    published: datetime | None
    content: str
    content_type: str  # html, markdown or text
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedDocument:
    hint: SourceHint
    entries: tuple[Entry, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Item:
    """One normalized item, ready to be stored."""

    id: str
    source_id: str
    guid: str
    url: str | None
    title: str
    author: str | None
    published: datetime | None
    body: str  # Markdown
    content_hash: str
    raw_id: str | None = None
    categories: tuple[str, ...] = ()
    parent_id: str | None = None  # the roundup this story was split from


@dataclass(frozen=True)
class StoredItem:
    """An item as read back from the store, with what later stages added."""

    id: str
    source_id: str
    source_name: str
    tier: int
    url: str | None
    title: str
    author: str | None
    published: datetime | None
    first_seen: datetime
    body: str
    content_hash: str
    kind: str | None = None
    topics: tuple[str, ...] = ()
    event_id: str | None = None
    source_kind: str | None = None
    categories: tuple[str, ...] = ()
    parent_id: str | None = None  # the roundup this story was split from
    children: int = 0  # stories split from this item, when it is a roundup

    @property
    def when(self) -> datetime:
        """The time the item is about: when it was published, else when first seen."""
        return self.published or self.first_seen


@dataclass(frozen=True)
class SearchHit:
    """One item found by a full-text search, with how well it matched and where."""

    id: str
    source_id: str
    source_name: str
    tier: int
    url: str | None
    title: str
    published: datetime | None
    first_seen: datetime
    kind: str | None
    topics: tuple[str, ...]
    event_id: str | None
    score: float  # BM25, higher is better; only comparable within one search
    snippet: str  # a stretch of the body, matched words between the store's markers

    @property
    def when(self) -> datetime:
        """The time the item is about: when it was published, else when first seen."""
        return self.published or self.first_seen


@dataclass(frozen=True)
class TopicRule:
    """A topic and the rules that give it (see pipeline/tag.py for how they score)."""

    id: str
    label: str
    any: tuple[str, ...]  # terms that each add to the score
    strong: tuple[str, ...] = ()  # terms that each add three times as much
    all: tuple[str, ...] = ()  # groups ("a|b|c") that must each be found for the topic to be given
    none: tuple[str, ...] = ()  # terms that veto the topic when found in the title or opening
    min_score: float | None = None  # score from which the topic is given (default: tag.min_score)
    weight: float = 1.0  # how much the topic counts when ranking digest stories


@dataclass(frozen=True)
class TopicMatch:
    topic_id: str
    score: float
    terms: tuple[str, ...]


@dataclass(frozen=True)
class ItemTags:
    item_id: str
    kind: str
    topics: tuple[TopicMatch, ...]


@dataclass(frozen=True)
class Event:
    id: str
    item_ids: tuple[str, ...]
    headline_item_id: str
    title: str
    related: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Problem:
    """Something that went wrong with one input; the run goes on."""

    where: str  # file path, URL or source id
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class StepResult:
    stage: str
    counts: dict[str, int] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    paths: tuple[str, ...] = ()  # files written
