"""Cluster: group items that report the same story into events.

Each item becomes a TF-IDF vector of its title (weighted up) and the opening
of its body. Names count more than other words: capitalised words and
tokens with digits (models, companies, products, laws, advisory ids), and
the pairs of names that stand side by side ("Meridian Open", "Open 2"), so
two stories about one company or one model family are told apart by what
else they name.

A new item joins an event when:

- another source's item has the same canonical URL or the same text (an
  exact copy), or
- its similarity to the most similar item of another source, within the
  time window, reaches ``cluster.threshold``.

Otherwise it starts an event of its own. Candidates come from an inverted
index of each item's most telling terms, so the work per item stays the
same however many items there are. Items are taken in a fixed order (time,
then id), so the result does not depend on input order, and an event keeps
its id as it grows. Events whose items are similar, but not enough to be
one story, are linked as related events.

Roundups (kind ``digest``) cover several stories at once: each stays an
event of its own and is only linked to the stories it mentions.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import math
import re
from functools import lru_cache
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .config import ClusterConfig, Config
from .models import Event, StepResult, StoredItem
from .store import Store
from .tag import share_event_topics

log = logging.getLogger(__name__)

TITLE_WEIGHT = 3.0
NAME_WEIGHT = 2.0
PAIR_WEIGHT = 1.5
LEDE_WORDS = 120
KEY_TERMS = 12  # terms of an item looked up in the index
MAX_CANDIDATES = 40  # items compared in full with each new item
RELATED_MEMBERS = 4  # members of an event compared when linking related events
MAX_KEY_SHARE = 0.05  # terms in more items than this share are not looked up
MAX_EVENT_SAMPLE = 8  # items of an event a new item is compared with

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just me more most my no nor not
    now of off on once only or other our ours out over own same she should so some such than that the their
    them then there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours new says said say week weeks today yesterday
    tomorrow year years month months day days one two three first last many much may might must per via
    including include includes according report reports reported update updates latest news post posts
    read more still even though however while within without across around among against toward towards
    like well get gets got make makes made take takes took way ways use used using another every
    monday tuesday wednesday thursday friday saturday sunday january february march april june july
    august september october november december""".split()
)

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-'’.][A-Za-z0-9]+)*|\d+(?:\.\d+)?[A-Za-z]*")


def _stem(word: str) -> str:
    if word.endswith(("'s", "’s")):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    return word


def terms(text: str) -> Counter[str]:
    """Weighted terms of a text: names (capitalized or with digits) count double, and each
    pair of names side by side is a term of its own."""
    out: Counter[str] = Counter()
    previous: str | None = None
    for m in _WORD.finditer(text):
        raw = m.group()
        word = _stem(raw.lower().replace("’", "'"))
        if word in STOPWORDS or (len(word) < 3 and not any(c.isdigit() for c in word)):
            previous = None
            continue
        is_name = raw[0].isupper() or any(c.isdigit() for c in raw)
        out[word] += NAME_WEIGHT if is_name else 1.0
        if is_name:
            if previous is not None and text[m.start() - 1: m.start()] == " ":
                out[f"{previous} {word}"] += PAIR_WEIGHT
            previous = word
        else:
            previous = None
    return out


def _plain(markdown: str) -> str:
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", markdown)  # images
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their words
    text = re.sub(r"https?://\S+", " ", text)
    return re.sub(r"[#*_`>|]", " ", text)


def item_terms(item: StoredItem) -> Counter[str]:
    lede = " ".join(_plain(item.body).split()[:LEDE_WORDS])
    counts = terms(lede)
    for word, weight in terms(item.title).items():
        counts[word] += weight * TITLE_WEIGHT
    return counts


@dataclass(frozen=True)
class TermStats:
    """How many items clustered before held each term: the document frequencies IDF is taken from,
    so that similarities do not swing with the size of one run's batch."""

    docs: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)


def term_counts(items: Iterable[StoredItem]) -> Counter[str]:
    """In how many of the items each term occurs."""
    df: Counter[str] = Counter()
    for i in items:
        df.update(item_terms(i).keys())
    return df


class Vectors:
    """Unit-length TF-IDF vectors for a set of items, and each one's most telling terms.

    With ``seen`` (the statistics of the items clustered before, which include
    ``existing``), document frequencies are those plus the new items'; without
    it, they come from the given items alone.
    """

    def __init__(self, items: Iterable[StoredItem], *, new_ids: set[str] | None = None,
                 seen: TermStats | None = None):
        raw = {i.id: item_terms(i) for i in items}
        # in how many of the new items each term occurs: what the store adds to its statistics
        self.new_counts: Counter[str] = Counter()
        for item_id in new_ids or ():
            self.new_counts.update(raw[item_id].keys())
        df: Counter[str] = Counter()
        if seen is not None and seen.docs and new_ids is not None:
            df.update(seen.counts)
            df.update(self.new_counts)
            n = seen.docs + len(new_ids) + 1
            for counts in raw.values():  # terms of existing items counted before this store kept statistics
                for w in counts:
                    if not df[w]:
                        df[w] = 1
        else:
            for counts in raw.values():
                df.update(counts.keys())
            n = len(raw) + 1
        self.df = df
        self.vectors: dict[str, dict[str, float]] = {}
        self.keys: dict[str, tuple[str, ...]] = {}
        # a term in more than this share of items says little about which story an item tells
        self.max_key_df = max(50, int(MAX_KEY_SHARE * n))
        for item_id, counts in raw.items():
            vec = {w: (1 + math.log(c)) * math.log(n / min(df[w], n - 1)) for w, c in counts.items()}
            norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
            unit = {w: v / norm for w, v in vec.items() if v > 0}
            self.vectors[item_id] = unit
            telling = [(v, w) for w, v in unit.items() if df[w] <= self.max_key_df]
            self.keys[item_id] = tuple(w for _, w in heapq.nlargest(KEY_TERMS, telling))

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two items (their shared terms found by a set intersection, in C)."""
        va, vb = self.vectors[a], self.vectors[b]
        return sum(va[w] * vb[w] for w in va.keys() & vb.keys())


def event_id_for(item_id: str) -> str:
    return "ev-" + hashlib.sha1(item_id.encode()).hexdigest()[:10]


def _order(item: StoredItem) -> tuple[datetime, str]:
    return (item.when, item.id)


def headline_of(members: Iterable[StoredItem]) -> StoredItem:
    """The item that stands for an event: lowest tier number, then earliest.

    A newsletter's story that only points at another member's own page (same
    link), or that says no more than its title, does not stand for the event
    while another item can.
    """
    members = list(members)
    own_pages = {i.url for i in members if i.url and i.parent_id is None}
    firsthand = [
        i for i in members
        if not (i.parent_id is not None and (i.url in own_pages or _only_its_title(i)))
    ] or members
    return min(firsthand, key=lambda i: (i.tier, i.when, i.id))


def _only_its_title(item: StoredItem) -> bool:
    """A newsletter's one-line mention ("X makes the case for Y"): its text is its title again."""
    return len(_plain(item.body).split()) <= len(item.title.split()) + 3


class _Index:
    """Items placed so far, findable by their telling terms (in day buckets, so a lookup only
    reads the days of the time window), their link and their text."""

    def __init__(self, vectors: Vectors, window: timedelta):
        self.vectors = vectors
        self.days = max(1, math.ceil(window.total_seconds() / 86400))
        self.postings: dict[str, dict[int, list[StoredItem]]] = defaultdict(lambda: defaultdict(list))
        self.by_url: dict[str, list[StoredItem]] = defaultdict(list)
        self.by_hash: dict[str, list[StoredItem]] = defaultdict(list)

    @staticmethod
    def _day(item: StoredItem) -> int:
        return int(item.when.timestamp() // 86400)

    def add(self, item: StoredItem) -> None:
        day = self._day(item)
        for term in self.vectors.keys[item.id]:
            self.postings[term][day].append(item)
        if item.url:
            self.by_url[item.url].append(item)
        self.by_hash[item.content_hash].append(item)

    def copies(self, item: StoredItem) -> list[StoredItem]:
        found = list(self.by_url.get(item.url, ())) if item.url else []
        found += self.by_hash.get(item.content_hash, ())
        return found

    def candidates(self, item: StoredItem, limit: int = MAX_CANDIDATES) -> list[StoredItem]:
        """The placed items near in time sharing most telling terms with ``item``."""
        shared: Counter[str] = Counter()
        by_id: dict[str, StoredItem] = {}
        vec = self.vectors.vectors[item.id]
        day = self._day(item)
        for term in self.vectors.keys[item.id]:
            weight = vec.get(term, 0.0)
            buckets = self.postings.get(term)
            if not buckets:
                continue
            for d in range(day - self.days, day + self.days + 1):
                for other in buckets.get(d, ()):
                    shared[other.id] += weight
                    by_id[other.id] = other
        best = heapq.nlargest(limit, shared.items(), key=lambda kv: (kv[1], kv[0]))
        return [by_id[i] for i, _ in best]


def cluster(new: Iterable[StoredItem], existing: Iterable[StoredItem], cfg: ClusterConfig, *,
            seen: TermStats | None = None) -> list[Event]:
    """Events touched by ``new`` items (see ``cluster_counting``)."""
    return cluster_counting(new, existing, cfg, seen=seen)[0]


def cluster_counting(new: Iterable[StoredItem], existing: Iterable[StoredItem], cfg: ClusterConfig, *,
                     seen: TermStats | None = None) -> tuple[list[Event], Counter[str]]:
    """Events touched by ``new`` items, given items already in events (with ``event_id`` set).

    Returns every event among the given items, with its members and related
    events, so the caller can store what changed. ``seen`` gives the term
    statistics of every item clustered before; beside the events comes in how
    many of the new items each term occurs, which the store adds to them.
    """
    new = sorted(new, key=_order)
    existing = sorted(existing, key=_order)
    vectors = Vectors(existing + new, new_ids={i.id for i in new}, seen=seen)
    window = timedelta(days=cfg.window_days)
    event_of: dict[str, str] = {i.id: i.event_id for i in existing if i.event_id}
    members: dict[str, list[StoredItem]] = defaultdict(list)
    index = _Index(vectors, window)
    for i in existing:
        if i.event_id:
            members[i.event_id].append(i)
            if i.kind != "digest":
                index.add(i)

    for item in new:
        event_id = None
        if item.kind != "digest":
            event_id = _joined_event(item, index, event_of, members, vectors, window, cfg)
            index.add(item)
        event_id = event_id or event_id_for(item.id)
        event_of[item.id] = event_id
        members[event_id].append(item)

    related = _related(members, vectors, cfg)
    events = []
    for event_id, items in sorted(members.items()):
        head = headline_of(items)
        events.append(
            Event(
                id=event_id,
                item_ids=tuple(sorted(i.id for i in items)),
                headline_item_id=head.id,
                title=head.title,
                related=related.get(event_id, ()),
            )
        )
    return events, vectors.new_counts


def _joined_event(item: StoredItem, index: _Index, event_of: dict[str, str], members: dict[str, list[StoredItem]],
                  vectors: Vectors, window: timedelta, cfg: ClusterConfig) -> str | None:
    """The event a new item joins, or None when it tells a story of its own.

    An event's score is the mean of the item's best match among the event's
    items and its average match with them, so one close item is not enough to
    pull a story into an event whose other items tell something else.
    """
    copies = [o for o in index.copies(item) if o.source_id != item.source_id and abs(o.when - item.when) <= window]
    if copies:
        return event_of[min(copies, key=_order).id]
    ids = _identifiers(item)
    best_score, best_event = 0.0, None
    seen: set[str] = set()
    for other in index.candidates(item):
        if other.source_id == item.source_id or abs(other.when - item.when) > window:
            continue
        candidate = event_of[other.id]
        if candidate in seen:
            continue
        seen.add(candidate)
        group = [m for m in members[candidate] if abs(m.when - item.when) <= window][:MAX_EVENT_SAMPLE]
        sims = [vectors.similarity(item.id, m.id) for m in group]
        if not sims:
            continue
        if ids and any(_identifiers(m) and not (_identifiers(m) & ids) for m in group):
            continue  # another advisory or vulnerability id: another story
        score = (max(sims) + sum(sims) / len(sims)) / 2
        if score > best_score or (score == best_score and best_event is not None and candidate < best_event):
            best_score, best_event = score, candidate
    return best_event if best_score >= cfg.threshold else None


_IDENTIFIER = re.compile(r"\b(?:CVE-\d{4}-\d{4,}|[A-Z]{2,6}-\d{4}-\d{2,5}|GHSA(?:-[0-9a-z]{4}){3})\b")


def _identifiers(item: StoredItem) -> frozenset[str]:
    """Vulnerability and advisory ids an item names (CVE-2026-1234, NIS-2026-004)."""
    return _identifiers_of(item.title, item.body[:2000])


@lru_cache(maxsize=65536)
def _identifiers_of(title: str, opening: str) -> frozenset[str]:
    return frozenset(_IDENTIFIER.findall(f"{title} {opening}"))


def _related(
    members: dict[str, list[StoredItem]], vectors: Vectors, cfg: ClusterConfig
) -> dict[str, tuple[tuple[str, float], ...]]:
    """Each event's related events: similar items within the window, below one story's threshold."""
    window = timedelta(days=cfg.window_days)
    samples = {e: sorted(items, key=lambda i: (i.tier, i.when, i.id))[:RELATED_MEMBERS] for e, items in members.items()}
    days = max(1, math.ceil(window.total_seconds() / 86400))
    # postings by term and day, so an event only looks at events near it in time
    postings: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for event_id, items in samples.items():
        for i in items:
            day = _Index._day(i)
            for term in vectors.keys[i.id]:
                postings[term][day].add(event_id)
    scores: dict[str, dict[str, float]] = defaultdict(dict)
    for a, items in samples.items():
        shared: Counter[str] = Counter()
        for i in items:
            day = _Index._day(i)
            for term in vectors.keys[i.id]:
                buckets = postings[term]
                for d in range(day - days, day + days + 1):
                    shared.update(e for e in buckets.get(d, ()) if e != a)
        for b, _ in heapq.nlargest(MAX_CANDIDATES, shared.items(), key=lambda kv: (kv[1], kv[0])):
            if b in scores[a]:
                continue
            best = max(
                (vectors.similarity(x.id, y.id) for x in items for y in samples[b] if abs(x.when - y.when) <= window),
                default=0.0,
            )
            if best >= cfg.related_threshold:
                score = round(best, 2)
                scores[a][b] = score
                scores[b][a] = score
    return {
        e: tuple(sorted(links.items(), key=lambda r: (-r[1], r[0]))[: cfg.max_related])
        for e, links in scores.items()
        if links
    }


def cluster_step(store: Store, config: Config, now: datetime) -> StepResult:
    new = store.unclustered_items()
    if not new:
        return StepResult("cluster", {"new items": 0, "events changed": 0})
    since = min(i.when for i in new) - timedelta(days=config.cluster.window_days)
    existing = store.items_of_active_events(since)
    docs, counts = store.term_stats()
    events, new_counts = cluster_counting(new, existing, config.cluster, seen=TermStats(docs, counts))
    with store.transaction():
        changed = store.save_events(events, now)
        store.add_term_stats(len(new), new_counts)
    share_event_topics(store, config, {e.id for e in events if len(e.item_ids) > 1})
    joined = sum(1 for e in events if len(e.item_ids) > 1)
    log.info("clustered %d new items: %d events changed, %d with several items", len(new), changed, joined)
    return StepResult("cluster", {"new items": len(new), "events changed": changed, "events": len(events)})
