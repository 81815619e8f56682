"""Tag: label items by topic and by kind of piece.

Topics come from config. Each topic has:

- ``any``: terms that each add to the topic's score;
- ``strong``: terms that each add three times as much (names and phrases that
  mean the topic on their own: "export controls", "zero-day");
- ``all``: groups of alternatives ("AI|model|LLM") that must each be found
  in the title or the body's first sentence, or twice in the opening, or the
  topic is not given (to keep "funding" to AI funding, say);
- ``none``: terms that veto the topic when found in the title;
- ``min_score``: the score from which the topic is given (default ``tag.min_score``).

A term is a phrase, matched as whole words in any case, with spaces and
hyphens alike and plurals folded ("open-weight model" finds "open weight
models"), or a regular expression written between slashes (``/\\bGPT-\\d/``).

Where a term is found decides what it is worth: in the title ``title_weight``
times its weight; in the body ``body_weight`` times its weight for each time,
a time in the opening words counting double one further down, and at most
two times' worth per term. So a phrase in the title of a one-line item can
carry a topic, while one passing mention deep in a long article cannot.
Every tag records the terms that matched; ``explain`` shows the whole sum.

A roundup (kind ``digest``) is about each story it lists, so it also takes the
topics of each story on its own: the parts of a title that joins them with
semicolons, and the sections of its body.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import datetime

from .config import Config, TagConfig
from .models import ItemTags, StepResult, StoredItem, TopicMatch, TopicRule
from .roundup import sections
from .store import Store
from .terms import MAX_PHRASE_WORDS, Term, compile_term, plain_text, words_of

log = logging.getLogger(__name__)

STRONG_WEIGHT = 3.0
LEDE_WORDS = 80  # the opening of a body, where a term says most about what the item is about
LATER_HIT = 0.5  # what a term found after the opening is worth, against 1 in the opening
MAX_BODY_HITS = 1.0  # the most a term adds from the body, in hits
MAX_NGRAM = MAX_PHRASE_WORDS
_FIRST_SENTENCE = re.compile(r".*?(?:[.!?](?=\s)|$)", re.S)

class _Zone:
    """One part of an item (its title, the opening of its body, the rest), ready for lookups."""

    def __init__(self, text: str):
        self.text = text
        words = words_of(text.replace("-", " "))
        grams: Counter[tuple[str, ...]] = Counter()
        for n in range(1, MAX_NGRAM + 1):
            for i in range(len(words) - n + 1):
                grams[tuple(words[i:i + n])] += 1
        self.grams = grams

    def count(self, term: Term) -> int:
        if term.regex is not None:
            return len(term.regex.findall(self.text))
        return self.grams.get(term.words, 0)


class ItemText:
    """An item's title, opening and rest, for matching many terms against it."""

    def __init__(self, title: str, body: str):
        words = plain_text(body).split()
        self.title = _Zone(title)
        self.lede = _Zone(" ".join(words[:LEDE_WORDS]))
        self.rest = _Zone(" ".join(words[LEDE_WORDS:]))

    @cached_property
    def first(self) -> _Zone:
        """The opening sentence, read only when an ``all`` group is not in the title."""
        return _Zone(_FIRST_SENTENCE.match(self.lede.text).group(0))

    def grams(self) -> set[tuple[str, ...]]:
        """Every word group in the item, for finding which phrases it holds."""
        return self.title.grams.keys() | self.lede.grams.keys() | self.rest.grams.keys()

    def has(self, term: Term) -> bool:
        return any(zone.count(term) for zone in (self.title, self.lede, self.rest))

    def opens_with(self, group: Iterable[Term]) -> bool:
        """Whether the item says it is about one of these terms: in its title or its first sentence,
        or twice in its opening."""
        group = list(group)
        return (
            any(self.title.count(t) for t in group)
            or any(self.first.count(t) for t in group)
            or sum(self.lede.count(t) for t in group) >= 2
        )

    def score(self, term: Term, cfg: TagConfig) -> tuple[float, str]:
        """What a term adds, and where it was found."""
        in_title = self.title.count(term) > 0
        lede, rest = self.lede.count(term), self.rest.count(term)
        body = min(lede + LATER_HIT * rest, MAX_BODY_HITS)
        score = term.weight * (cfg.title_weight * in_title + cfg.body_weight * body)
        where = ", ".join(
            part
            for part, n in (("title", in_title), (f"opening x{lede}", lede), (f"later x{rest}", rest))
            if n
        )
        return score, where


@dataclass(frozen=True)
class CompiledTopic:
    rule: TopicRule
    terms: tuple[Term, ...]
    groups: tuple[tuple[Term, ...], ...]
    vetoes: tuple[Term, ...]
    phrases: dict[tuple[str, ...], Term] = field(default_factory=dict)  # the phrase terms, by their words
    patterns: tuple[Term, ...] = ()  # the regular expression terms

    def __post_init__(self) -> None:
        object.__setattr__(self, "phrases", {t.words: t for t in self.terms if t.regex is None})
        object.__setattr__(self, "patterns", tuple(t for t in self.terms if t.regex is not None))


def _distinct(terms: Iterable[Term]) -> tuple[Term, ...]:
    """Terms that match different things: "open-weight", "open weights" and "open-weights" are
    one phrase once hyphens and plurals are folded; the strongest spelling counts, once."""
    best: dict[object, Term] = {}
    for t in terms:
        key = t.words or t.text
        if key not in best or t.weight > best[key].weight:
            best[key] = t
    return tuple(best.values())


def compile_topics(rules: Iterable[TopicRule]) -> tuple[CompiledTopic, ...]:
    return tuple(
        CompiledTopic(
            rule=r,
            terms=_distinct(
                [compile_term(t, STRONG_WEIGHT) for t in r.strong] + [compile_term(t) for t in r.any]
            ),
            groups=tuple(tuple(compile_term(t) for t in g.split("|") if t.strip()) for g in r.all),
            vetoes=tuple(compile_term(t) for t in r.none),
        )
        for r in rules
    )


@dataclass(frozen=True)
class TermScore:
    term: str
    score: float
    where: str


@dataclass(frozen=True)
class TopicExplanation:
    """Why a topic was given to an item, or not."""

    topic_id: str
    label: str
    score: float
    min_score: float
    given: bool
    terms: tuple[TermScore, ...]
    missing_groups: tuple[str, ...] = ()  # ``all`` groups of which nothing was found
    vetoed_by: tuple[str, ...] = ()
    below_best: bool = False  # left out: far below the item's best topic


def explain_topics(text: ItemText, topics: Iterable[CompiledTopic], cfg: TagConfig,
                   context: ItemText | None = None) -> list[TopicExplanation]:
    """Every topic's score for one item, and whether it is given.

    A topic is given when its score reaches its minimum, every ``all`` group is
    found (in the item, or in ``context``: the roundup a story is part of), no
    ``none`` term is in the title, and its score is at least ``tag.relative``
    times the best score the item has: a topic the item only touches on, beside
    the one it is about, is left out.
    """
    out = []
    present = text.grams()
    for topic in topics:
        scored = []
        # only the terms the item holds are scored: its phrases looked up among its word groups
        found = [topic.phrases[k] for k in present & topic.phrases.keys()]
        for term in found + [t for t in topic.patterns if text.has(t)]:
            score, where = text.score(term, cfg)
            if score > 0:
                scored.append(TermScore(term.text, round(score, 3), where))
        total = round(sum(s.score for s in scored), 3)
        minimum = topic.rule.min_score if topic.rule.min_score is not None else cfg.min_score
        missing = tuple(
            "|".join(t.text for t in group)
            for group in topic.groups
            if not text.opens_with(group) and not (context is not None and context.opens_with(group))
        )
        vetoed = tuple(v.text for v in topic.vetoes if text.title.count(v))
        out.append(
            TopicExplanation(
                topic_id=topic.rule.id,
                label=topic.rule.label,
                score=total,
                min_score=minimum,
                given=total >= minimum and not missing and not vetoed,
                terms=tuple(sorted(scored, key=lambda s: (-s.score, s.term))),
                missing_groups=missing,
                vetoed_by=vetoed,
            )
        )
    best = max((e.score for e in out if e.given), default=0.0)
    return [
        e if not e.given or e.score >= cfg.relative * best else replace(e, given=False, below_best=True) for e in out
    ]


def match_topics(title: str, body: str, topics: Iterable[CompiledTopic], cfg: TagConfig,
                 context: ItemText | None = None) -> tuple[TopicMatch, ...]:
    return _matches(ItemText(title, body), topics, cfg, context)


def _matches(text: ItemText, topics: Iterable[CompiledTopic], cfg: TagConfig,
             context: ItemText | None = None) -> tuple[TopicMatch, ...]:
    matches = [
        TopicMatch(e.topic_id, e.score, tuple(sorted(t.term for t in e.terms)))
        for e in explain_topics(text, topics, cfg, context)
        if e.given
    ]
    return tuple(sorted(matches, key=lambda m: (-m.score, m.topic_id)))


# --- kinds ---------------------------------------------------------------------------

_OPED = re.compile(r"^\s*(?:op-?ed|opinion|guest essay|viewpoint|column)\b", re.I)
_RESEARCH = re.compile(
    r"\b(?:arxiv|preprint|paper|study (?:finds|shows|suggests)|researchers (?:show|find|found)|new study|"
    r"research notes?|(?:a|the) study\b|we (?:study|find|show|propose)|findings from|replication)\b", re.I
)
_RESEARCH_URL = re.compile(r"arxiv\.|/abs/\d|/papers?/|preprint", re.I)
_DIGEST = re.compile(
    r"\b(?:roundup|round-up|digest|this week in|newsletter|issue #?\d+|edition #?\d+)\b"
    r"|\bweekly\b(?:\s*[:#\u2014\u2013]|\s+(?:roundup|round-up|briefing|recap|review|edition)\b)", re.I
)  # "weekly" names a roundup only as a masthead ("Interlock weekly:"), not in "weekly caps"
_LIST_TITLE = re.compile(r";.+;|\s\|\s.+\s\|\s")  # "Chip rules tighten; Meridian ships weights; a patch"
_GUIDE = re.compile(
    r"^\s*(?:how to|how do|a guide to|guide:|explainer|explained|what is|what are|what (?:it|this) means|"
    r"a beginner'?s|step[- ]by[- ]step|tutorial|faq)\b|\bexplained\b|: a (?:guide|primer|checklist)\b|\bwithout breaking\b",
    re.I,
)
_ANNOUNCE = re.compile(
    r"^\s*(?:introducing|announcing|today,? we|we are (?:releasing|launching|introducing|publishing|announcing)|"
    r"we'?re (?:releasing|launching|introducing|publishing|announcing)|we have (?:released|launched|published)|"
    r"press release|statement\b)", re.I
)
_ADVISORY = re.compile(r"\b(?:security advisory|advisory [A-Z]*-?\d|[A-Z]{2,}-\d{4}-\d{2,})\b")
_OPINION = re.compile(
    r"\b(?:should|must|needs? to|ought to|stop|we need|it'?s time|why we|the case (?:for|against)|in defen[cs]e of)\b",
    re.I,
)


def classify_kind(item: StoredItem) -> str:
    """The kind of piece, from clear cues in the title first, then the source's default."""
    return explain_kind(item)[0]


def explain_kind(item: StoredItem) -> tuple[str, str]:
    """The kind of piece and the cue that decided it."""
    title = item.title
    if item.children:
        return "digest", f"a roundup split into {item.children} stories"
    if item.parent_id is not None:
        return _story_kind(item), "a story of a roundup: its own cues, else news"
    if _OPED.search(title):
        return "op-ed", "the title is marked as opinion"
    if _GUIDE.search(title):
        return "guide", "the title reads as a how-to or an explainer"
    if item.source_kind == "digest":
        return "digest", "the source publishes roundups"
    if _DIGEST.search(title) or _LIST_TITLE.search(title):
        return "digest", "the title names a roundup or lists several stories"
    if _ANNOUNCE.search(title) or _ANNOUNCE.search(item.body[:200]):
        return "announcement", "it announces something in the first person"
    if (item.url and _RESEARCH_URL.search(item.url)) or _RESEARCH.search(title):
        return "research", "it is about a paper or a study"
    if item.source_kind:
        if item.source_kind == "commentary" and _OPINION.search(title) and item.tier >= 2:
            kind = "op-ed" if _OPED.search(item.body[:80]) else "commentary"
            return kind, f"the source's usual kind ({item.source_kind})"
        return item.source_kind, f"the source's usual kind ({item.source_kind})"
    if item.tier == 1:
        return "announcement", "a tier-1 (primary) source"
    if _ADVISORY.search(title):
        return "announcement", "the title names an advisory"
    return "news", "no other cue: reporting"


def _story_kind(item: StoredItem) -> str:
    """The kind of one story of a roundup: from its own cues; a newsletter's take is news otherwise."""
    title = item.title
    if _OPED.search(title):
        return "op-ed"
    if _GUIDE.search(title):
        return "guide"
    if (item.url and _RESEARCH_URL.search(item.url)) or _RESEARCH.search(title):
        return "research"
    if item.source_kind in ("commentary", "op-ed"):
        return item.source_kind
    return "news"


EVENT_SHARE = 0.67  # an item takes a topic that at least this share of the rest of its event has
EVENT_NOTE = "shared by the other items of its event"


def event_topics(members: Iterable[tuple[str, frozenset[str]]],
                 blocked: Mapping[str, frozenset[str]] | None = None) -> dict[str, set[str]]:
    """Topics each item of one event takes from the others: what most of the rest of the event is
    about, which a one-line item often does not say itself. Only rule topics are counted, so the
    result does not feed on itself; a topic an item's own title vetoes (``blocked``) is not taken."""
    members = list(members)
    blocked = blocked or {}
    out: dict[str, set[str]] = {}
    for item_id, own in members:
        others = [topics for other, topics in members if other != item_id]
        counts = Counter(t for topics in others for t in topics)
        out[item_id] = {
            t for t, n in counts.items()
            if others and n >= EVENT_SHARE * len(others) and t not in own and t not in blocked.get(item_id, ())
        }
    return out


def vetoed_topics(title: str, topics: Iterable[CompiledTopic]) -> frozenset[str]:
    """The topics whose ``none`` terms are in this title."""
    zone = ItemText(title, "").title
    return frozenset(t.rule.id for t in topics if any(zone.count(v) for v in t.vetoes))


def share_event_topics(store: Store, config: Config, event_ids: Iterable[str],
                       topics: tuple[CompiledTopic, ...] | None = None) -> int:
    """Give the items of these events the topics their events share; return how many changed.
    ``topics``: the config's rules, when the caller has compiled them already."""
    members = store.event_members(event_ids)
    ids = [i.id for items in members.values() for i in items]
    rule = store.rule_topics(ids)
    topics = topics if topics is not None else compile_topics(config.topics)
    shared: dict[str, set[str]] = {}
    for items in members.values():
        stories = [i for i in items if i.kind != "digest"]
        blocked = {i.id: vetoed_topics(i.title, topics) for i in stories}
        shared.update(event_topics(((i.id, frozenset(rule.get(i.id, ()))) for i in stories), blocked))
        shared.update({i.id: set() for i in items if i.kind == "digest"})
    return store.set_event_topics(shared, EVENT_NOTE)


_MASTHEAD = re.compile(r"^[^:;]{2,60}?(?::|\s[\u2014\u2013-])\s+")  # "Policy Memo — ", "Gradient Ascent #121: "
_TITLE_SEPARATOR = re.compile(r"\s*;\s*|\s+\|\s+")


def roundup_parts(title: str, body: str) -> list[tuple[str, str]]:
    """The stories a roundup lists, each as a title and a body: the parts of a title that joins
    them with semicolons (without the newsletter's name in front), and the sections of its body."""
    parts: list[tuple[str, str]] = []
    segments = _TITLE_SEPARATOR.split(title.strip())
    if len(segments) >= 2:
        segments[0] = _MASTHEAD.sub("", segments[0], count=1)
        parts += [(s, "") for s in segments if s]
    parts += [(t, b) for t, b in sections(body) if words_of(t + " " + b)]
    return parts if len(parts) >= 2 else []


def roundup_topics(title: str, body: str, topics: Iterable[CompiledTopic], cfg: TagConfig,
                   whole: ItemText | None = None) -> list[tuple[str, tuple[TopicMatch, ...]]]:
    """Each story a roundup lists (its title, or the opening of its text) with the topics it has
    on its own. What the roundup as a whole (``whole``: its text, when the caller has it) says it
    is about (the ``all`` groups: "AI", say) holds for each of its stories."""
    topics = tuple(topics)
    whole = whole if whole is not None else ItemText(title, body)
    out = []
    for part_title, part_body in roundup_parts(title, body):
        name = part_title or " ".join(part_body.split()[:8])
        out.append((name, match_topics(part_title, part_body, topics, cfg, context=whole)))
    return out


def _merge(matches: Iterable[TopicMatch]) -> tuple[TopicMatch, ...]:
    best: dict[str, TopicMatch] = {}
    for m in matches:
        if m.topic_id not in best or m.score > best[m.topic_id].score:
            best[m.topic_id] = m
    return tuple(sorted(best.values(), key=lambda m: (-m.score, m.topic_id)))


def tag_item(item: StoredItem, topics: Iterable[CompiledTopic], cfg: TagConfig) -> ItemTags:
    """An item's kind and topics. A roundup is about each story it lists, so its topics are also
    those of each story on its own: beside a bigger story, a small one would fall below the
    item's best topic."""
    topics = tuple(topics)
    kind = classify_kind(item)
    text = ItemText(item.title, item.body)
    found = _matches(text, topics, cfg)
    if kind == "digest":
        stories = roundup_topics(item.title, item.body, topics, cfg, whole=text)
        found = _merge([*found, *(m for _, ms in stories for m in ms)])
    return ItemTags(item_id=item.id, kind=kind, topics=found)


def tag_step(store: Store, config: Config, now: datetime, *, retag: bool = False) -> StepResult:
    items = store.items(untagged_only=not retag)
    topics = compile_topics(config.topics)
    tags = [tag_item(i, topics, config.tag) for i in items]
    changed = store.save_tags(tags, now)
    indexed = store.index_items([t.item_id for t in tags])
    events = {i.event_id for i in items if i.event_id}
    if events:  # items retagged in events already made: their events' shared topics again
        share_event_topics(store, config, events, topics)
    with_topics = sum(1 for t in tags if t.topics)
    log.info("tagged %d items (%d with topics, %d changed)", len(tags), with_topics, changed)
    return StepResult(
        "tag", {"tagged": len(tags), "with topics": with_topics, "changed": changed, "indexed": indexed}
    )
