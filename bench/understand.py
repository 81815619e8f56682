"""Benchmark of tagging and clustering, and how their cost grows with the number of items.

    python bench/understand.py                 # 10,000 to 100,000 items (a few minutes)
    python bench/understand.py --sizes 2000,8000  # a quick run

It generates items that read like this field's news (sentences and names drawn from the labelled
sets in tests/data/understand/, recombined into stories that two to four sources report, at a
steady number of items per day, a third of them one-liners), then times, for each size, in one
process:

  - words: reading every item's words once, the floor any tagger pays;
  - tag: every topic rule of config.toml on every item (tag.tag_item);
  - cluster: every item into events, all at once (cluster.cluster), through the term index;
  - all-pairs: for the smallest sizes only, the comparison of every item with every other one
    within the time window, which the index avoids: the named baseline, whose time grows with
    the square of the items.

Prints items per second and the time per item at each size against the smallest: near 1.0 means
the work grows in step with the items. Peak memory is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.cluster import Vectors, cluster  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.models import StoredItem  # noqa: E402
from pipeline.tag import ItemText, compile_topics, tag_item  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
ITEMS_PER_DAY = 1000


def _pools() -> tuple[list[str], list[str], list[str]]:
    """Sentences, titles and capitalised names from the labelled sets."""
    sentences, titles, names = [], [], set()
    for path in sorted((ROOT / "tests" / "data" / "understand").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            titles.append(row["title"])
            sentences += [s for s in re.split(r"(?<=[.!?])\s+", row["body"]) if len(s) > 40]
            names.update(re.findall(r"\b[A-Z][a-z]+[A-Z]?[a-z]*\b", row["title"]))
    return sentences, titles, sorted(names)


def make_items(n: int, seed: int = 1) -> list[StoredItem]:
    rng = random.Random(seed)
    sentences, titles, names = _pools()
    items: list[StoredItem] = []
    story = 0
    while len(items) < n:
        story += 1
        day = len(items) / ITEMS_PER_DAY
        # a story: a made-up product name and a few sentences that its reports share
        name = f"{rng.choice(names)} {rng.choice(names)}-{rng.randint(2, 99)}"
        core = rng.sample(sentences, 3)
        title = rng.choice(titles)
        for report in range(rng.choice((1, 1, 2, 2, 3, 4))):
            when = START + timedelta(days=day, hours=rng.uniform(0, 36))
            words = title.split()
            rng.shuffle(words)
            body = "" if rng.random() < 0.33 else " ".join(
                [f"{name} {core[0]}", *rng.sample(core[1:], 1), *rng.sample(sentences, rng.randint(1, 6))]
            )
            item_id = f"s{story}r{report}"
            items.append(StoredItem(
                id=item_id, source_id=f"source-{rng.randint(1, 400)}", source_name="S", tier=rng.choice((1, 2, 3)),
                url=f"https://news{report}.example/{item_id}", title=f"{name}: {' '.join(words[:10])}", author=None,
                published=when, first_seen=when, body=body, content_hash=item_id,
            ))
    return items[:n]


def _time(work) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def all_pairs(items: list[StoredItem], window_days: float) -> int:
    """The baseline: every item against every earlier one in the window, as a plain scan does."""
    vectors = Vectors(items)
    window = timedelta(days=window_days)
    ordered = sorted(items, key=lambda i: i.when)
    compared = 0
    for n, item in enumerate(ordered):
        for other in ordered[:n]:
            if item.when - other.when <= window:
                vectors.similarity(item.id, other.id)
                compared += 1
    return compared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,25000,50000,100000", help="comma-separated numbers of items")
    parser.add_argument("--pairs-up-to", type=int, default=4000, help="largest size the all-pairs baseline runs at")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    config = load_config(ROOT / "config.toml")
    topics = compile_topics(config.topics)
    print(f"tagging and clustering, {ITEMS_PER_DAY} items a day, {len(config.topics)} topics, "
          f"cluster window {config.cluster.window_days:g} days")
    print(f"\n{'items':>8} {'words s':>8} {'tag s':>8} {'tag/s':>8} {'cluster s':>10} {'cluster/s':>10} "
          f"{'tag x words':>12} {'events':>8}")
    per_item: dict[int, tuple[float, float]] = {}
    for n in sizes:
        items = make_items(n)
        def read_words() -> None:
            for i in items:
                ItemText(i.title, i.body)

        words = _time(read_words)
        tag = _time(lambda: [tag_item(i, topics, config.tag) for i in items])
        events: list = []
        clustered = _time(lambda: events.extend(cluster(items, [], config.cluster)))
        per_item[n] = (tag / n, clustered / n)
        print(f"{n:>8} {words:>8.1f} {tag:>8.1f} {n / tag:>8.0f} {clustered:>10.1f} {n / clustered:>10.0f} "
              f"{tag / words:>12.2f} {len(events):>8}")
    base = sizes[0]
    print(f"\ntime per item against {base} items (1.0 = grows in step with the items):")
    for n in sizes[1:]:
        print(f"  {n:>7} items: tag {per_item[n][0] / per_item[base][0]:.2f}x, "
              f"cluster {per_item[n][1] / per_item[base][1]:.2f}x")
    pair_sizes = [s for s in (args.pairs_up_to // 2, args.pairs_up_to) if s >= 100]
    if pair_sizes:
        print("\nbaseline: all pairs within the window, no index")
        times = {}
        for n in pair_sizes:
            items = make_items(n)
            compared = 0

            def run() -> None:
                nonlocal compared
                compared = all_pairs(items, config.cluster.window_days)

            times[n] = _time(run)
            ours = _time(lambda: cluster(items, [], config.cluster))
            print(f"  {n:>7} items: {compared:>10} comparisons, {times[n]:.1f} s; ours (with related events) "
                  f"{ours:.1f} s")
        a, b = pair_sizes
        print(f"  doubling the items multiplies the all-pairs time by {times[b] / times[a]:.2f} "
              f"(the window holds about {ITEMS_PER_DAY * config.cluster.window_days * 2:.0f} items at most)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory: {peak:.0f} MB")


if __name__ == "__main__":
    main()
