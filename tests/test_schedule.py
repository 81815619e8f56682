"""Scheduled mode: jobs built from [schedule], and catch-up of missed digests."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from pipeline import ingest as ingest_mod
from pipeline import schedule as sch
from pipeline.config import ConfigError, load_config
from pipeline.store import Store

from .conftest import write_config


def set_keys(config_path: Path, section: str, **values: str) -> Path:
    """Set keys of one [section] of a written config (values are TOML text)."""
    text = config_path.read_text(encoding="utf-8")
    head = text.index(f"[{section}]\n")
    end = text.find("\n[", head + 1)
    body = text[head:end]
    for key, value in values.items():
        body, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", body)
        assert n == 1, f"{section}.{key} is not in the shipped config"
    config_path.write_text(text[:head] + body + text[end:], encoding="utf-8")
    return config_path


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_jobs_and_next_fire_times_come_from_the_config(tmp_path):
    path = set_keys(
        write_config(tmp_path), "schedule",
        interval_minutes="15", timezone='"Europe/Berlin"', daily='"30 6 * * *"', weekly='"0 8 * * mon"',
        misfire_grace="120",
    )
    config = load_config(path)
    now = utc("2026-03-28T12:00:00")  # a Saturday; Berlin moves to summer time on Sunday 29 March
    specs = sch.job_specs(config, start=now)
    assert [s.id for s in specs] == ["update", "daily-digest", "weekly-digest"]
    assert isinstance(specs[0].trigger, IntervalTrigger) and specs[0].period is None
    assert all(isinstance(s.trigger, CronTrigger) for s in specs[1:])
    assert [s.period for s in specs[1:]] == ["daily", "weekly"]

    nxt = sch.next_fire_times(specs, now)
    assert nxt["update"] == now  # the update job runs at start, then every 15 minutes
    assert specs[0].trigger.get_next_fire_time(now, now + timedelta(seconds=1)) == now + timedelta(minutes=15)
    assert nxt["daily-digest"] == utc("2026-03-29T04:30:00")  # 06:30 CEST is 04:30 UTC
    assert nxt["weekly-digest"] == utc("2026-03-30T06:00:00")  # Monday 08:00 CEST

    scheduler = sch.build_scheduler(config, specs)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"update", "daily-digest", "weekly-digest"}
    for job in jobs.values():
        assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time == 120
        assert job.func is sch.run_job and job.args[1] == job.id


def test_jobs_can_be_turned_off_and_bad_times_name_their_key(tmp_path):
    path = set_keys(write_config(tmp_path), "schedule", interval_minutes="0", weekly='""')
    assert [s.id for s in sch.job_specs(load_config(path))] == ["daily-digest"]

    path = set_keys(path, "schedule", daily='"0 25 * * *"', timezone='"Mars/Olympus"')
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.problems == ["schedule.timezone: unknown time zone 'Mars/Olympus'"]
    path = set_keys(path, "schedule", timezone='""')
    with pytest.raises(sch.ScheduleError) as bad:
        sch.job_specs(load_config(path))
    assert len(bad.value.problems) == 1 and bad.value.problems[0].startswith("schedule.daily: ")
    path = set_keys(path, "schedule", daily='"every morning"')
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.problems[0].startswith("schedule.daily: must be a crontab time with 5 fields")


def test_schedule_list_prints_the_jobs(tmp_path, cli):
    path = set_keys(write_config(tmp_path), "schedule", timezone='"America/New_York"', weekly='""')
    result = cli("--now", "2026-04-13T12:00:00Z", "schedule", "--list", config=path)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert [line.split()[0] for line in lines] == ["update", "daily-digest"]
    assert lines[1].split()[1] == "2026-04-14T07:00:00-04:00"


def test_missed_digests_skips_made_and_older_keys():
    times = [utc(f"2026-04-{d:02d}T07:00:00") for d in range(8, 14)]
    key = lambda t: t.strftime("%Y-%m-%d")  # noqa: E731
    assert sch.missed_digests(times, {}, key) == [(key(t), t) for t in times]
    made = {"2026-04-09": None, "2026-04-11": None}
    # 10 April is missing but older than the newest made digest: making it now would repeat
    # items that the 11 April digest already took in, so it is left alone.
    assert sch.missed_digests(times, made, key) == [(key(t), t) for t in times[4:]]
    twice = [utc("2026-04-12T07:00:00"), utc("2026-04-12T19:00:00")]
    assert sch.missed_digests(twice, {}, key) == [("2026-04-12", twice[1])]


def _feed(folder: Path, name: str, n: int) -> Path:
    items = "".join(
        f"<item><title>{name} story {j} on open weights</title><link>https://{name}.example/{j}</link>"
        f"<guid>{name}-{j}</guid><description>What happened in {name}, part {j}.</description></item>"
        for j in range(n)
    )
    path = folder / f"{name}.xml"
    path.write_text(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>{name}</title>'
        f"<link>https://{name}.example/</link><description>x</description>{items}</channel></rss>",
        encoding="utf-8",
    )
    return path


def test_catch_up_makes_exactly_the_missed_digests_once(tmp_path):
    path = set_keys(write_config(tmp_path, paths=[]), "schedule", daily='"0 7 * * *"', weekly='"0 7 * * mon"',
                    catch_up_days="7")
    config = load_config(path)
    feeds = tmp_path / "in"
    feeds.mkdir()
    days = {d: f"2026-04-{d:02d}" for d in range(9, 14)}  # Thursday 9 to Monday 13 April
    with Store(config.store.path) as store:
        for d, day in days.items():
            ingest_mod.ingest_paths(store, config, [_feed(feeds, f"day{d}", 2)], utc(f"{day}T05:00:00"))
            if d <= 10:  # the scheduler ran on the 9th and 10th, then was down
                assert sch.make_digest(store, config, "daily", day, utc(f"{day}T07:00:00")).counts["written"] == 1
        before = store.digest_dates("daily")
    assert set(before) == {days[9], days[10]}

    now = utc("2026-04-13T09:30:00")
    specs = sch.job_specs(config, start=now)
    assert sch.catch_up(config, specs, clock=lambda: now) == ["ok", "ok"]

    with Store(config.store.path) as store:
        made = store.digest_dates("daily")
        assert set(made) == set(days.values())
        assert {k: made[k] for k in before} == before  # the two made before were not made again
        for d in (11, 12, 13):  # each missed digest holds the items first seen that day, as of 07:00
            item_dates = {
                r["date"] for r in store.db.query(
                    "SELECT d.date FROM digest_items di JOIN digests d ON d.id = di.digest_id "
                    "JOIN items i ON i.id = di.item_id WHERE i.guid LIKE ? AND d.period = 'daily'",
                    [f"day{d}-%"],
                )
            }
            assert item_dates == {days[d]}
        assert set(store.digest_dates("weekly")) == {"2026-W16"}
        runs = [r for r in store.last_runs(10) if r["command"] in ("daily-digest", "weekly-digest")]
        assert {r["status"] for r in runs} == {"ok"}
        rows_before = store.table_counts()
    files = sorted(p for p in (tmp_path / "digests").rglob("*") if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in files}

    # Starting again (later the same day) makes nothing: every digest due is there.
    later = now + timedelta(hours=2)
    sch.catch_up(config, specs, clock=lambda: later)
    with Store(config.store.path) as store:
        assert store.digest_dates("daily") == made
        after = store.table_counts()
        assert {k: v for k, v in after.items() if k != "runs"} == {k: v for k, v in rows_before.items() if k != "runs"}
    assert {p: p.stat().st_mtime_ns for p in files} == stamps


def test_a_digest_job_catches_up_then_writes_the_current_digest(tmp_path):
    path = set_keys(write_config(tmp_path, paths=[]), "schedule", daily='"0 7 * * *"', weekly='""',
                    interval_minutes="0")
    config = load_config(path)
    feeds = tmp_path / "in"
    feeds.mkdir()
    with Store(config.store.path) as store:
        ingest_mod.ingest_paths(store, config, [_feed(feeds, "early", 2)], utc("2026-04-11T05:00:00"))
        sch.make_digest(store, config, "daily", "2026-04-11", utc("2026-04-11T07:00:00"))
        ingest_mod.ingest_paths(store, config, [_feed(feeds, "late", 2)], utc("2026-04-12T05:00:00"))
        ingest_mod.ingest_paths(store, config, [_feed(feeds, "today", 2)], utc("2026-04-13T06:00:00"))
    spec = sch.job_specs(config)[0]
    fired = utc("2026-04-13T07:00:05")
    assert sch.run_job(config, spec.id, sch.digest_work(spec, config), clock=lambda: fired) == "ok"
    with Store(config.store.path) as store:
        assert set(store.digest_dates("daily")) == {"2026-04-11", "2026-04-12", "2026-04-13"}
        run = store.last_run("daily-digest")
        assert run["status"] == "ok" and run["counts"]["digest.written"] == 2


def test_status_shows_the_schedule(tmp_path, cli):
    path = write_config(tmp_path, paths=[])
    with Store(tmp_path / "pipeline.db") as store:  # a run recorded as the command line records it
        store.finish_run(store.start_run("tag", utc("2026-04-13T05:00:00")), now=utc("2026-04-13T05:00:01"),
                         status="ok", counts={}, problems=[])
    result = cli("--now", "2026-04-13T06:00:00Z", "status", config=path)
    assert result.code == 0, result.err
    schedule = result.out[result.out.index("\nSchedule:"):]
    assert "`pipeline schedule` not running" in schedule
    assert re.search(r"daily-digest .* next 2026-04-13 07:00 UTC +never run", schedule)
    assert re.search(r"weekly-digest .* next 2026-04-13 07:00 UTC", schedule)  # a Monday
    assert re.search(r"#1 +tag .* ok", result.out)
