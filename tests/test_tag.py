from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from pipeline.config import TagConfig
from pipeline.models import StoredItem, TopicRule
from pipeline.tag import ItemText, classify_kind, compile_topics, explain_topics, match_topics, roundup_parts, tag_item
from pipeline.terms import compile_term

CFG = TagConfig(title_weight=2.0, body_weight=1.0, min_score=4.0, relative=0.35)
TOPICS = compile_topics([
    TopicRule("open-weight", "Open", any=("weights", "licence"), strong=("open-weight", "model weights")),
    TopicRule("policy", "Policy", any=("court", "ruling"), strong=("export controls",), none=("tennis court",)),
    TopicRule("business", "Business", any=("deal",), strong=("funding",), all=("AI|model",)),
    TopicRule("compute", "Compute", strong=("/\\bH\\d{3}\\b/",), any=("chips",)),
])
NOW = datetime(2026, 4, 13, tzinfo=timezone.utc)


def _topics(title: str, body: str = "") -> list[str]:
    return [m.topic_id for m in match_topics(title, body, TOPICS, CFG)]


def test_phrases_match_whole_words_hyphens_spaces_and_plurals():
    term = compile_term("open-weight model")
    assert term.words == ("open", "weight", "model")
    assert _topics("New open weight releases") == ["open-weight"]
    assert _topics("An Open-Weight release") == ["open-weight"]
    assert _topics("Reopen weighting") == []
    assert _topics("Court", "courtesy and courtship") == []


def test_a_regular_expression_term():
    assert _topics("Shipments of H200 resume") == ["compute"]
    assert _topics("Shipments of H2000 resume") == []


def test_a_strong_term_in_the_title_carries_a_topic_and_a_passing_mention_does_not():
    assert _topics("Export controls tighten") == ["policy"]
    assert _topics("A chip story", "It mentions a court once.") == []
    # an ordinary term in the title and again in the opening is enough
    assert _topics("Court weighs the case", "The court heard arguments and a ruling is due.") == ["policy"]
    # a mention far down a long body counts half
    long_body = "Filler words here. " * 40 + "The court ruled. A ruling followed."
    assert _topics("A chip story", long_body) == []


def test_none_terms_veto_a_topic_in_the_title():
    assert _topics("Tennis court export controls") == []
    assert _topics("Export controls", "A tennis court opened nearby.") == ["policy"]


def test_all_groups_must_each_be_found():
    assert _topics("Tennis startup lands funding") == []
    assert _topics("AI startup lands funding") == ["business"]
    # ...in the title, in the body's first sentence, or twice in its opening
    assert _topics("Perch lands funding", "Perch, an AI answer engine, said so. More later.") == ["business"]
    assert _topics("Perch lands funding", "Perch said so. Its rival uses AI.") == []
    assert _topics("Perch lands funding", "Perch said so. Its rival uses AI. A model, too.") == ["business"]


def test_a_side_topic_far_below_the_main_one_is_left_out():
    body = "Model weights, open-weight, licence, weights. " * 3 + "A deal was mentioned."
    assert _topics("Open-weight model weights released under a new licence in an AI deal", body) == ["open-weight"]


def test_a_roundup_has_the_topics_of_each_story_it_lists():
    title = "The AI Brief #12: export controls widen after a court ruling; a startup lands funding; H200 shipments"
    body = "**Export controls.** The court ruling, in detail.\n\n- **Money:** An AI deal."
    assert roundup_parts(title, body) == [
        ("export controls widen after a court ruling", ""), ("a startup lands funding", ""), ("H200 shipments", ""),
        ("Export controls", "The court ruling, in detail."), ("Money", "An AI deal."),
    ]
    cfg = replace(CFG, relative=0.6)
    # beside the main story the small ones fall below the item's best score; each alone carries its
    # topic, and what the roundup says it is about ("AI", for business) holds for each of its stories
    assert _topics("A startup lands funding") == []
    assert [m.topic_id for m in match_topics(title, body, TOPICS, cfg)] == ["policy"]
    digest = _item(title, source_kind="digest", body=body)
    assert sorted(m.topic_id for m in tag_item(digest, TOPICS, cfg).topics) == ["business", "compute", "policy"]
    # an item that is not a roundup is tagged as a whole
    single = _item("Export controls widen after a court ruling and H200 shipments", body=body)
    assert [m.topic_id for m in tag_item(single, TOPICS, cfg).topics] == ["policy"]
    # a title without a list and a body of one paragraph is not split
    assert roundup_parts("The Brief #12: export controls", "One story only.") == []
    # a body with headings: each heading and the paragraphs under it are one story; what comes
    # before the first heading (the masthead, a greeting) is none
    headed = "Hello readers.\n\n## Export controls\n\nA court ruled.\n\nMore on it.\n\n## H200 shipments\n\nThey resume."
    assert roundup_parts("The Brief #12", headed) == [
        ("Export controls", "A court ruled.\n\nMore on it."), ("H200 shipments", "They resume."),
    ]


def test_matches_record_their_terms_and_explanations_give_the_sum():
    matches = match_topics("Export controls reach model weights", "A court ruling.", TOPICS, CFG)
    # open-weight: 'model weights' (strong) and 'weights' in the title: 2 x 3 + 2 x 1;
    # policy: 'export controls' in the title (2 x 3) and 'court' and 'ruling' in the opening (1 each)
    assert [(m.topic_id, m.score, m.terms) for m in matches] == [
        ("open-weight", 8.0, ("model weights", "weights")),
        ("policy", 8.0, ("court", "export controls", "ruling")),
    ]
    explained = {e.topic_id: e for e in explain_topics(ItemText("Export controls tighten", ""), TOPICS, CFG)}
    policy = explained["policy"]
    assert policy.given and policy.score == 6.0 and policy.min_score == 4.0
    assert [(t.term, t.score, t.where) for t in policy.terms] == [("export controls", 6.0, "title")]
    assert not explained["business"].given and explained["business"].missing_groups == ("AI|model",)


@pytest.mark.parametrize("bad", ["/[unclosed/", "   ", "one two three four five six", "/\\\\bchief officer\\\\b/"])
def test_unusable_terms_are_refused(bad: str) -> None:
    from pipeline.terms import term_error

    assert term_error(bad)


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
    assert classify_kind(_item("Chip rules tighten; Meridian ships weights; a patch for Nomad")) == "digest"
    assert classify_kind(_item("Interlock weekly: two patches")) == "digest"
    assert classify_kind(_item("Claude Max gets weekly limits")) == "news"  # "weekly" only names a roundup as a masthead


def test_a_roundup_and_its_stories_have_their_own_kinds():
    assert classify_kind(replace(_item("The Brief #12"), children=5)) == "digest"
    story = replace(_item("Chip rule lands", source_kind="digest"), parent_id="p")
    assert classify_kind(story) == "news"
