"""Cluster: group items that report the same story into events.

Each item becomes a TF-IDF vector of its title (weighted up) and the opening
of its body, with names (capitalized words, tokens with digits) weighted up
too. A new item joins the event of its most similar item from another
source within the time window when the cosine similarity reaches
``cluster.threshold``; otherwise it starts an event of its own. Items are
taken in a fixed order (time, then id), so the result does not depend on
input order, and an event keeps its id as it grows. Events whose items are
similar but below the threshold are linked as related events.

Roundups (kind ``digest``) cover several stories at once: each stays an
event of its own and is only linked to the stories it mentions.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from .config import ClusterConfig, Config
from .models import Event, StepResult, StoredItem
from .store import Store

log = logging.getLogger(__name__)

TITLE_WEIGHT = 3.0
NAME_WEIGHT = 2.0
LEDE_WORDS = 150

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
    like well get gets got make makes made take takes took way ways use used using another every""".split()
)

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-'][A-Za-z0-9]+)*|\d+(?:\.\d+)?[A-Za-z]*")


def _stem(word: str) -> str:
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return word


def terms(text: str) -> Counter[str]:
    """Weighted terms of a text: names (capitalized or with digits) count double."""
    out: Counter[str] = Counter()
    for m in _WORD.finditer(text):
        raw = m.group()
        word = _stem(raw.lower())
        if word in STOPWORDS or (len(word) < 3 and not any(c.isdigit() for c in word)):
            continue
        is_name = raw[0].isupper() or any(c.isdigit() for c in raw)
        out[word] += NAME_WEIGHT if is_name else 1.0
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


class Vectors:
    """Unit-length TF-IDF vectors for a set of items."""

    def __init__(self, items: Iterable[StoredItem]):
        raw = {i.id: item_terms(i) for i in items}
        df: Counter[str] = Counter()
        for counts in raw.values():
            df.update(counts.keys())
        n = len(raw) + 1
        self.vectors: dict[str, dict[str, float]] = {}
        for item_id, counts in raw.items():
            vec = {w: (1 + math.log(c)) * math.log(n / df[w]) for w, c in counts.items()}
            norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
            self.vectors[item_id] = {w: v / norm for w, v in vec.items()}

    def similarity(self, a: str, b: str) -> float:
        va, vb = self.vectors[a], self.vectors[b]
        if len(va) > len(vb):
            va, vb = vb, va
        return sum(v * vb.get(w, 0.0) for w, v in va.items())


def event_id_for(item_id: str) -> str:
    return "ev-" + hashlib.sha1(item_id.encode()).hexdigest()[:10]


def _order(item: StoredItem) -> tuple[datetime, str]:
    return (item.when, item.id)


def headline_of(members: Iterable[StoredItem]) -> StoredItem:
    """The item that stands for an event: lowest tier number, then earliest."""
    return min(members, key=lambda i: (i.tier, i.when, i.id))


def cluster(new: Iterable[StoredItem], existing: Iterable[StoredItem], cfg: ClusterConfig) -> list[Event]:
    """Events touched by ``new`` items, given items already in events (with ``event_id`` set).

    Returns every event among the given items, with its members and related
    events, so the caller can store what changed.
    """
    new = sorted(new, key=_order)
    existing = sorted(existing, key=_order)
    everything = existing + new
    vectors = Vectors(everything)
    window = timedelta(days=cfg.window_days)
    event_of: dict[str, str] = {i.id: i.event_id for i in existing if i.event_id}
    members: dict[str, list[StoredItem]] = defaultdict(list)
    for i in existing:
        if i.event_id:
            members[i.event_id].append(i)
    pool = [i for i in existing if i.kind != "digest"]

    for item in new:
        best_score, best_event = 0.0, None
        if item.kind != "digest":
            for other in pool:
                if other.source_id == item.source_id or abs(other.when - item.when) > window:
                    continue
                score = vectors.similarity(item.id, other.id)
                candidate = event_of[other.id]
                if score > best_score or (score == best_score and best_event is not None and candidate < best_event):
                    best_score, best_event = score, candidate
        if best_event is not None and best_score >= cfg.threshold:
            event_id = best_event
        else:
            event_id = event_id_for(item.id)
        event_of[item.id] = event_id
        members[event_id].append(item)
        if item.kind != "digest":
            pool.append(item)

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
    return events


def _related(
    members: dict[str, list[StoredItem]], vectors: Vectors, cfg: ClusterConfig
) -> dict[str, tuple[tuple[str, float], ...]]:
    window = timedelta(days=cfg.window_days)
    ids = sorted(members)
    scores: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for n, a in enumerate(ids):
        for b in ids[n + 1:]:
            best = 0.0
            for x in members[a]:
                for y in members[b]:
                    if abs(x.when - y.when) <= window:
                        best = max(best, vectors.similarity(x.id, y.id))
            if best >= cfg.related_threshold:
                score = round(best, 3)
                scores[a].append((b, score))
                scores[b].append((a, score))
    return {
        e: tuple(sorted(links, key=lambda r: (-r[1], r[0]))[: cfg.max_related]) for e, links in scores.items()
    }


def cluster_step(store: Store, config: Config, now: datetime) -> StepResult:
    new = store.unclustered_items()
    if not new:
        return StepResult("cluster", {"new items": 0, "events changed": 0})
    since = min(i.when for i in new) - timedelta(days=config.cluster.window_days)
    existing = store.items_of_active_events(since)
    events = cluster(new, existing, config.cluster)
    changed = store.save_events(events, now)
    joined = sum(1 for e in events if len(e.item_ids) > 1)
    log.info("clustered %d new items: %d events changed, %d with several items", len(new), changed, joined)
    return StepResult("cluster", {"new items": len(new), "events changed": changed, "events": len(events)})
