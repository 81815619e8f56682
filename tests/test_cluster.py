from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from pipeline.cluster import cluster, event_id_for
from pipeline.config import ClusterConfig
from pipeline.models import StoredItem

CFG = ClusterConfig(window_days=4, threshold=0.22, related_threshold=0.1, max_related=8)
T0 = datetime(2026, 4, 6, 12, tzinfo=timezone.utc)


def _item(item_id: str, source: str, title: str, body: str, *, hours: float = 0, tier: int = 3,
          kind: str = "news", event: str | None = None) -> StoredItem:
    when = T0 + timedelta(hours=hours)
    return StoredItem(id=item_id, source_id=source, source_name=source, tier=tier, url=None, title=title,
                      author=None, published=when, first_seen=when, body=body, content_hash=item_id, kind=kind,
                      event_id=event)


ITEMS = [
    _item("a1", "lab", "Introducing Corvid 3, our open-weight model", "Corvid 3 weights are available under Apache 2.0 from Rookery Labs.", tier=1),
    _item("a2", "wire", "Rookery Labs releases Corvid 3 open-weight model", "Rookery Labs published Corvid 3 weights under Apache 2.0.", hours=3),
    _item("a3", "blog", "Corvid 3 is a generous release from Rookery Labs", "The Corvid 3 licence is Apache 2.0, and Rookery Labs shipped weights.", hours=20, tier=2),
    _item("b1", "wire", "Senate passes chip export bill", "The Senate passed the Chip Security Act restricting accelerator exports.", hours=1),
    _item("b2", "memo", "Chip Security Act clears the Senate", "Senators approved the Chip Security Act on export limits for accelerators.", hours=5, tier=2),
    _item("c1", "sec", "Ransomware hits hospital network", "A ransomware gang encrypted systems at Lakeside Hospital.", hours=2),
]


def _groups(events):
    return sorted(tuple(e.item_ids) for e in events)


def test_same_story_from_different_sources_is_one_event():
    events = cluster(ITEMS, [], CFG)
    assert _groups(events) == [("a1", "a2", "a3"), ("b1", "b2"), ("c1",)]
    corvid = next(e for e in events if "a1" in e.item_ids)
    assert corvid.headline_item_id == "a1"  # tier 1 first
    assert corvid.id == event_id_for("a1")


def test_result_does_not_depend_on_input_order():
    expected = cluster(ITEMS, [], CFG)
    for seed in range(5):
        shuffled = ITEMS[:]
        random.Random(seed).shuffle(shuffled)
        assert cluster(shuffled, [], CFG) == expected


def test_new_item_joins_an_existing_event_and_keeps_its_id():
    first = cluster(ITEMS[:2], [], CFG)
    event = first[0]
    stored = [_item(i.id, i.source_id, i.title, i.body, hours=(i.when - T0).total_seconds() / 3600,
                    tier=i.tier, event=event.id) for i in ITEMS[:2]]
    later = cluster([ITEMS[2]], stored, CFG)
    assert len(later) == 1 and later[0].id == event.id
    assert later[0].item_ids == ("a1", "a2", "a3")


def test_items_outside_the_time_window_do_not_join():
    far = _item("a9", "other", "Rookery Labs releases Corvid 3 open-weight model",
                "Rookery Labs published Corvid 3 weights under Apache 2.0.", hours=24 * 10)
    events = cluster([ITEMS[0], far], [], CFG)
    assert _groups(events) == [("a1",), ("a9",)]


def test_roundups_stay_alone_and_link_to_the_stories_they_cover():
    roundup = _item("r1", "letter", "This week: Corvid 3 and the Chip Security Act",
                    "Rookery Labs shipped Corvid 3 weights. The Senate passed the Chip Security Act.", hours=30,
                    kind="digest")
    events = cluster(ITEMS + [roundup], [], CFG)
    r = next(e for e in events if "r1" in e.item_ids)
    assert r.item_ids == ("r1",)
    related = {rid for rid, _ in r.related}
    assert event_id_for("a1") in related and event_id_for("b1") in related
