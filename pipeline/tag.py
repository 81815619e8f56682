"""Tag: label items by topic and by kind of piece.

Topics come from config: each has phrases, and optional exclusions that veto
it. A phrase found in the title counts ``title_weight``, each body occurrence
``body_weight`` (at most three per phrase), and a topic is given when the
score reaches ``min_score``, so a single passing mention in the body is not
enough. Every tag records the phrases that matched.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .config import Config, TagConfig
from .models import ItemTags, StepResult, StoredItem, TopicMatch, TopicRule
from .store import Store

log = logging.getLogger(__name__)

MAX_BODY_HITS_PER_PHRASE = 3


def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """A phrase as a whole-word, case-insensitive pattern; spaces and hyphens are interchangeable
    and a plural 's' is allowed."""
    words = [re.escape(w) for w in re.split(r"[\s-]+", phrase.strip()) if w]
    body = r"[\s\-]+".join(words)
    return re.compile(rf"(?<![\w-]){body}(?:s|es)?(?![\w-])", re.IGNORECASE)


@dataclass(frozen=True)
class CompiledTopic:
    rule: TopicRule
    phrases: tuple[tuple[str, re.Pattern[str]], ...]
    exclude: tuple[re.Pattern[str], ...]


def compile_topics(rules: Iterable[TopicRule]) -> tuple[CompiledTopic, ...]:
    return tuple(
        CompiledTopic(
            rule=r,
            phrases=tuple((p, phrase_pattern(p)) for p in r.phrases),
            exclude=tuple(phrase_pattern(p) for p in r.exclude),
        )
        for r in rules
    )


def match_topics(title: str, body: str, topics: Iterable[CompiledTopic], cfg: TagConfig) -> tuple[TopicMatch, ...]:
    matches = []
    for topic in topics:
        text = f"{title}\n{body}"
        if any(p.search(text) for p in topic.exclude):
            continue
        score = 0.0
        terms = []
        for phrase, pattern in topic.phrases:
            in_title = bool(pattern.search(title))
            body_hits = min(len(pattern.findall(body)), MAX_BODY_HITS_PER_PHRASE)
            if in_title or body_hits:
                terms.append(phrase)
                score += cfg.title_weight * in_title + cfg.body_weight * body_hits
        if score >= cfg.min_score:
            matches.append(TopicMatch(topic.rule.id, round(score, 3), tuple(sorted(terms))))
    return tuple(sorted(matches, key=lambda m: (-m.score, m.topic_id)))


_OPED = re.compile(r"^\s*(op-?ed|opinion|guest essay|viewpoint)\b", re.I)
_RESEARCH = re.compile(r"\b(arxiv|preprint|paper|study finds|researchers (?:show|find))\b", re.I)
_DIGEST = re.compile(r"\b(roundup|round-up|digest|this week in|weekly|newsletter|issue #?\d+)\b", re.I)
_GUIDE = re.compile(r"^\s*(how to|a guide to|guide:|explainer|what is)\b", re.I)
_ANNOUNCE = re.compile(r"^\s*(introducing|announcing|today we|we are releasing|we're releasing)\b", re.I)


def classify_kind(item: StoredItem) -> str:
    """The kind of piece, from clear cues in the title first, then the source's default."""
    title = item.title
    if _OPED.search(title):
        return "op-ed"
    if _GUIDE.search(title):
        return "guide"
    if _ANNOUNCE.search(title) or _ANNOUNCE.search(item.body[:200]):
        return "announcement"
    if (item.url and "arxiv.org" in item.url) or _RESEARCH.search(title):
        return "research"
    if item.source_kind == "digest" or (item.source_kind is None and _DIGEST.search(title)):
        return "digest"
    if item.source_kind:
        return item.source_kind
    if item.tier == 1:
        return "announcement"
    return "news"


def tag_item(item: StoredItem, topics: Iterable[CompiledTopic], cfg: TagConfig) -> ItemTags:
    return ItemTags(item_id=item.id, kind=classify_kind(item), topics=match_topics(item.title, item.body, topics, cfg))


def tag_step(store: Store, config: Config, now: datetime, *, retag: bool = False) -> StepResult:
    items = store.items(untagged_only=not retag)
    topics = compile_topics(config.topics)
    tags = [tag_item(i, topics, config.tag) for i in items]
    changed = store.save_tags(tags, now)
    with_topics = sum(1 for t in tags if t.topics)
    log.info("tagged %d items (%d with topics, %d changed)", len(tags), with_topics, changed)
    return StepResult("tag", {"tagged": len(tags), "with topics": with_topics, "changed": changed})
