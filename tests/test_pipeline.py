"""End to end: the bundled seeds through every stage, through the command line."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest

from .conftest import ROOT, SEEDS, write_config

NOW = "2026-04-13T06:00:00Z"
EXPECTATIONS = json.loads((ROOT / "tests" / "data" / "seed_expectations.json").read_text())
STORIES = [title for item in EXPECTATIONS["items"] for title in item.get("split_into", [])]


def _table_counts(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%'")]
        return {n: con.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0] for n in names}
    finally:
        con.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """One full run on the seeds, shared by the read-only tests below."""
    from .conftest import run_cli

    tmp = tmp_path_factory.mktemp("seeded")
    config = write_config(tmp)
    result = run_cli("--now", NOW, "run", config=config)
    assert result.code == 0, result.err
    return tmp, config, result


def _items(cli, config, *args):
    result = cli("items", "--json", *args, config=config)
    assert result.code == 0, result.err
    return [json.loads(line) for line in result.out.splitlines()]


def test_run_writes_the_daily_digest_with_the_seed_stories(seeded):
    tmp, _, result = seeded
    digest = tmp / "digests" / "daily" / "2026-04-13.md"
    assert str(digest) in result.out.splitlines()
    text = digest.read_text()
    assert text.startswith("# Data Points: ")
    title = text.splitlines()[0]
    assert title.count("; ") == 2  # three top stories
    # every seed item appears, as a story or as another source of a story; a roundup through its stories
    for item in EXPECTATIONS["items"]:
        if item["story"] == "roundup":
            assert item["source"] in text, item["title"]
            continue
        assert item["url"].split("?")[0].split("#")[0].replace(":443", "") in text or item["title"] in text, item["title"]
    for heading in ("## Open-weight models", "## Cybersecurity", "## Policy and government", "## Compute and infrastructure"):
        assert heading in text
    assert "a tier-1 source" in text and "a tier-2 source" in text and "a tier-3 source" in text
    assert "Also reported by:" in text


def test_run_stores_every_seed_item_once(seeded, cli):
    tmp, config, _ = seeded
    counts = _table_counts(tmp / "pipeline.db")
    assert counts["items"] == len(EXPECTATIONS["items"]) + len(STORIES)
    assert counts["raw_documents"] == 9
    assert counts["runs"] >= 1
    for table in ("sources", "item_topics", "events", "event_items", "event_links", "digests", "digest_items"):
        assert counts[table] > 0, table


def test_items_json_has_the_documented_keys_and_utc_times(seeded, cli):
    _, config, _ = seeded
    rows = _items(cli, config)
    assert len(rows) == len(EXPECTATIONS["items"]) + len(STORIES)
    for row in rows:
        assert {"id", "source", "url", "title", "published", "kind", "tier", "topics", "event", "parent"} <= row.keys()
        assert row["tier"] in (1, 2, 3)
        assert isinstance(row["topics"], list)
        assert row["event"].startswith("ev-")
    by_title = {r["title"]: r for r in rows}
    for exp in EXPECTATIONS["items"]:
        row = by_title[exp["title"]]
        assert row["published"].replace("+00:00", "Z") == exp["published_utc"], exp["title"]
        assert row["parent"] is None
        for story in exp.get("split_into", []):
            # a roundup's stories point at it and carry its date
            assert by_title[story]["parent"] == row["id"], story
            assert by_title[story]["published"] == row["published"]
            assert row["kind"] == "digest" and by_title[story]["kind"] != "digest"


def test_items_filters(seeded, cli):
    _, config, _ = seeded
    cyber = _items(cli, config, "--topic", "cybersecurity")
    assert cyber and all("cybersecurity" in r["topics"] for r in cyber)
    patchline = _items(cli, config, "--source", "patchline")
    assert len(patchline) == sum(1 for i in EXPECTATIONS["items"] if i["source"] == "Patchline")
    brief = _items(cli, config, "--source", "compute-brief")
    assert len(brief) == 1 + 5  # the issue and its five stories
    recent = _items(cli, config, "--since", "2026-04-11T00:00:00Z")
    assert recent and all(r["published"] >= "2026-04-11" for r in recent)
    assert len(recent) < len(_items(cli, config))


def test_urls_are_canonical(seeded, cli):
    _, config, _ = seeded
    for row in _items(cli, config):
        if row["url"]:
            assert "utm_" not in row["url"] and "#" not in row["url"] and ":443" not in row["url"]
            assert "ref=" not in row["url"]


def test_stories_reported_by_several_sources_share_an_event(seeded, cli):
    _, config, _ = seeded
    rows = {r["title"]: r for r in _items(cli, config)}
    story_events: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    event_stories: dict[str, set[str]] = defaultdict(set)
    for exp in EXPECTATIONS["items"]:
        row = rows[exp["title"]]
        if exp["story"] and exp["story"] != "roundup":
            story_events[exp["story"]][row["event"]].add(row["source"])
            event_stories[row["event"]].add(exp["story"])
    joined = [s for s, events in story_events.items() if any(len(src) >= 2 for src in events.values())]
    assert len(joined) >= 5, dict(story_events)
    # no event mixes two different stories
    assert all(len(stories) == 1 for stories in event_stories.values()), dict(event_stories)


def test_topics_match_the_labelled_seeds(seeded, cli):
    _, config, _ = seeded
    rows = {r["title"]: r for r in _items(cli, config)}
    tp = fp = fn = 0
    for exp in EXPECTATIONS["items"]:
        got, want = set(rows[exp["title"]]["topics"]), set(exp["topics"])
        tp, fp, fn = tp + len(got & want), fp + len(got - want), fn + len(want - got)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    print(f"seed topics: precision {precision:.2f}, recall {recall:.2f}")
    assert recall >= 0.75 and precision >= 0.8


def test_second_run_changes_nothing(tmp_path: Path, cli):
    config = write_config(tmp_path)
    first = cli("--now", NOW, "run", config=config)
    assert first.code == 0, first.err
    digest = tmp_path / "digests" / "daily" / "2026-04-13.md"
    before_bytes = digest.read_bytes()
    before_counts = _table_counts(tmp_path / "pipeline.db")
    second = cli("--now", "2026-04-13T09:30:00Z", "run", config=config)
    assert second.code == 0, second.err
    assert digest.read_bytes() == before_bytes
    after_counts = _table_counts(tmp_path / "pipeline.db")
    assert after_counts.pop("runs") == before_counts.pop("runs") + 1
    assert after_counts == before_counts
    assert not list(digest.parent.glob(".*.tmp"))
    # next day: nothing new, so no digest is written
    third = cli("--now", "2026-04-14T06:00:00Z", "run", config=config)
    assert third.code == 0
    assert "digest: " in third.out and not (digest.parent / "2026-04-14.md").exists()


def test_new_items_go_to_the_next_digest_only(tmp_path: Path, cli):
    extra = tmp_path / "later"
    extra.mkdir()
    config = write_config(tmp_path, paths=[SEEDS / "feeds", SEEDS / "emails", SEEDS / "articles", extra])
    assert cli("--now", NOW, "run", config=config).code == 0
    # an unrelated story, and a follow-up to a seed story from a new source
    (extra / "fine.md").write_text(
        "---\ntitle: Regional court fines chatbot maker over unlicensed medical advice\n"
        "url: https://courtdesk.example/fine\npublished: 2026-04-13T12:00:00Z\n---\n\n"
        "A regional court in Ostrava fined the maker of a consumer chatbot for dispensing dosage advice "
        "without a medical licence, the first such penalty in the country.\n"
    )
    (extra / "followup.md").write_text(
        "---\ntitle: Tessellate Silicon's $275M Series B: what the TS-1 inference chip must prove\n"
        "url: https://chipnotes.example/tessellate\npublished: 2026-04-12T18:00:00Z\n---\n\n"
        "Tessellate Silicon raised $275 million in a Series B led by Ardent Peak Capital to build the TS-1, "
        "an inference accelerator with large on-chip SRAM banks. The startup now has to show the chip "
        "can serve AI models more cheaply than GPUs.\n"
    )
    result = cli("--now", "2026-04-14T06:00:00Z", "run", config=config)
    assert result.code == 0, result.err
    text = (tmp_path / "digests" / "daily" / "2026-04-14.md").read_text()
    assert "Regional court fines chatbot maker over unlicensed medical advice" in text
    assert "Introducing Meridian Open 2" not in text  # already in the digest of the 13th
    # the follow-up joined the seed story's event: the event is shown again, with the new source
    assert "Inference chip startup Tessellate Silicon raises $275M Series B" in text
    assert "[chipnotes.example](https://chipnotes.example/tessellate)" in text
    assert text.count("\n### ") == 2


def test_each_stage_runs_alone(tmp_path: Path, cli):
    config = write_config(tmp_path)
    ingest = cli("--now", NOW, "ingest", SEEDS / "feeds", SEEDS / "emails", config=config)
    assert ingest.code == 0, ingest.err
    assert ingest.out.startswith("ingest: ") and "31 new" in ingest.out and "9 stories new" in ingest.out
    tag = cli("--now", NOW, "tag", config=config)
    assert tag.code == 0 and "40 tagged" in tag.out
    cluster = cli("--now", NOW, "cluster", config=config)
    assert cluster.code == 0 and "40 new items" in cluster.out
    digest = cli("--now", NOW, "digest", config=config)
    assert digest.code == 0
    assert (tmp_path / "digests" / "daily" / "2026-04-13.md").exists()
    weekly = cli("--now", NOW, "digest", "--period", "weekly", config=config)
    assert weekly.code == 0 and (tmp_path / "digests" / "weekly" / "2026-W16.md").exists()
    retag = cli("--now", NOW, "tag", "--retag", config=config)
    assert retag.code == 0 and "40 tagged" in retag.out and "changed" not in retag.out
    normalize = cli("--now", NOW, "normalize", config=config)
    assert normalize.code == 0 and "31 unchanged" in normalize.out and "9 stories unchanged" in normalize.out
    status = cli("status", config=config)
    assert status.code == 0
    assert "The Weights Ledger" in status.out and "items" in status.out and "Last runs:" in status.out
    assert "normalize" in status.out


def test_malformed_input_is_reported_and_the_rest_is_ingested(tmp_path: Path, cli):
    bad = tmp_path / "inbox"
    bad.mkdir()
    (bad / "broken.rss").write_text("<rss version='2.0'><channel><title>x</title><item><title>a</item></channel></rss>")
    (bad / "notes.json").write_text('{"hello": "world"}')
    (bad / "blob.bin").write_bytes(b"\x00\x01\x02binary")
    config = write_config(tmp_path)
    result = cli("--now", NOW, "ingest", SEEDS / "feeds", bad, config=config)
    assert result.code == 3
    assert "Traceback" not in result.err
    assert "inbox/broken.rss: feed is not well-formed" in result.err and ", column " in result.err
    assert "inbox/notes.json: JSON but not a JSON Feed" in result.err
    assert "inbox/blob.bin: unrecognized file type" in result.err
    assert "29 new" in result.out  # every item of the good feeds
    # the failure is stored with the raw bytes, and a re-run neither duplicates nor loses anything
    again = cli("--now", NOW, "ingest", SEEDS / "feeds", bad, config=config)
    assert again.code == 3
    counts = _table_counts(tmp_path / "pipeline.db")
    assert counts["items"] == 29
    assert counts["raw_documents"] == 6  # four feeds plus the two unreadable files kept raw


def test_missing_input_path_is_reported(tmp_path: Path, cli):
    config = write_config(tmp_path)
    result = cli("--now", NOW, "ingest", tmp_path / "nothing-here", config=config)
    assert result.code == 3
    assert "nothing-here: no such file or folder" in result.err


def test_explain_shows_why_an_item_has_its_topics(seeded, cli):
    _, config, _ = seeded
    rows = {r["title"]: r for r in _items(cli, config)}
    item = rows["Introducing Meridian Open 2"]
    result = cli("explain", item["id"], config=config)
    assert result.code == 0, result.err
    out = result.out
    assert out.startswith(f"{item['id']}  Introducing Meridian Open 2")
    assert "kind: announcement" in out and "tier 1" in out and f"event: {item['event']}" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("yes open-weight"))
    assert "score" in line and "needed" in line
    assert "+ 3  'open-weight' (opening x1, later x1)" in out  # the term, what it added, where it was found
    by_url = cli("explain", item["url"], config=config)
    assert by_url.code == 0 and by_url.out == out
    roundup = next(r for r in rows.values() if r["kind"] == "digest" and r["title"].startswith("The Compute Brief"))
    explained = cli("explain", roundup["id"], config=config)
    assert explained.code == 0, explained.err
    stories = explained.out.split("A roundup also has the topics of each story it lists")[1]
    jobs = next(ln for ln in stories.splitlines() if "Jobs: the electrician gap" in ln)
    assert "business (" in jobs  # one story's topic, given by its own terms
    stored = {r["id"] for r in _items(cli, config, "--topic", "business")}
    assert roundup["id"] in stored  # and the roundup has it
    missing = cli("explain", "no-such-item", config=config)
    assert missing.code == 1 and missing.err.startswith("Error: no-such-item: no such item")
