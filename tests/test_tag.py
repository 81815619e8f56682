from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from pipeline.config import TagConfig
from pipeline.models import StoredItem, TopicRule
from pipeline.tag import classify_kind, compile_topics, match_topics, phrase_pattern

CFG = TagConfig(title_weight=3.0, body_weight=1.0, min_score=2.0)
TOPICS = compile_topics([
    TopicRule("open-weight", "Open", ("open-weight", "model weights")),
    TopicRule("policy", "Policy", ("export controls", "court"), exclude=("tennis court",)),
])
NOW = datetime(2026, 4, 13, tzinfo=timezone.utc)


def test_phrases_match_whole_words_hyphens_spaces_and_plurals():
    p = phrase_pattern("open-weight model")
    assert p.search("New open weight models are out")
    assert p.search("An Open-Weight Model")
    assert not p.search("reopen-weight models")
    assert not phrase_pattern("court").search("courtesy")


def test_title_counts_more_than_a_passing_mention():
    assert [m.topic_id for m in match_topics("Export controls tighten", "", TOPICS, CFG)] == ["policy"]
    assert match_topics("A chip story", "It mentions a court once.", TOPICS, CFG) == ()
    matches = match_topics("A chip story", "The court ruled. The court appeal follows.", TOPICS, CFG)
    assert matches[0].topic_id == "policy" and matches[0].score == 2.0 and matches[0].terms == ("court",)


def test_exclusions_veto_a_topic():
    assert match_topics("Court news", "A new tennis court opened; the court is busy.", TOPICS, CFG) == ()


def test_matches_record_their_terms_and_sort_by_score():
    matches = match_topics("Open-weight release meets export controls", "model weights, model weights", TOPICS, CFG)
    assert [(m.topic_id, m.terms) for m in matches] == [
        ("open-weight", ("model weights", "open-weight")),
        ("policy", ("export controls",)),
    ]


def _item(title: str, *, source_kind: str | None = None, tier: int = 3, url: str | None = None, body: str = "") -> StoredItem:
    return StoredItem(id="i", source_id="s", source_name="S", tier=tier, url=url, title=title, author=None,
                      published=NOW, first_seen=NOW, body=body, content_hash="h", source_kind=source_kind)


def test_kind_from_cues_then_source_default():
    assert classify_kind(_item("Op-ed: Ban nothing")) == "op-ed"
    assert classify_kind(_item("How to run a model locally")) == "guide"
    assert classify_kind(_item("Introducing Model 2")) == "announcement"
    assert classify_kind(_item("Scaling study", url="https://arxiv.org/abs/2604.00001")) == "research"
    assert classify_kind(_item("Anything", source_kind="digest")) == "digest"
    assert classify_kind(_item("Anything", source_kind="commentary")) == "commentary"
    assert classify_kind(_item("Anything", tier=1)) == "announcement"
    assert classify_kind(_item("Anything")) == "news"
    assert classify_kind(replace(_item("This week in chips: issue 12"))) == "digest"
