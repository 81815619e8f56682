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
from pipeline.lock import StageLock, lock_path
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


def _item_dates(store: Store, prefix: str, period: str = "daily") -> set[str]:
    """The keys of the digests of ``period`` that hold the items whose guid starts with ``prefix``."""
    return {
        r["date"] for r in store.db.query(
            "SELECT d.date FROM digest_items di JOIN digests d ON d.id = di.digest_id "
            "JOIN items i ON i.id = di.item_id WHERE i.guid LIKE ? AND d.period = ?",
            [f"{prefix}-%", period],
        )
    }


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
            if d in (10, 11):  # the scheduler ran on the 10th and 11th, making the digests of the days before
                fired = utc(f"{day}T07:00:00")
                assert sch.make_digest(store, config, "daily", days[d - 1], fired).counts["written"] == 1
        before = store.digest_dates("daily")
    assert set(before) == {days[9], days[10]}

    now = utc("2026-04-13T09:30:00")  # back on the 13th: the jobs of the 12th and 13th were missed
    specs = sch.job_specs(config, start=now)
    assert sch.catch_up(config, specs, clock=lambda: now) == ["ok", "ok"]

    with Store(config.store.path) as store:
        made = store.digest_dates("daily")
        assert set(made) == {days[9], days[10], days[11], days[12]}  # the 13th is not over yet
        assert {k: made[k] for k in before} == before  # the two made before were not made again
        for d in (9, 10, 11, 12):  # each digest holds the items first seen on its day
            assert _item_dates(store, f"day{d}") == {days[d]}
        assert _item_dates(store, "day13") == set()  # they wait for the digest of the 13th
        # the weekly job of Monday the 13th makes the week that ended then: 6 to 12 April
        assert set(store.digest_dates("weekly")) == {"2026-W15"}
        assert all(_item_dates(store, f"day{d}", "weekly") == {"2026-W15"} for d in (9, 10, 11, 12))
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


def test_a_digest_job_catches_up_then_writes_the_digest_of_the_day_that_ended(tmp_path):
    path = set_keys(write_config(tmp_path, paths=[]), "schedule", daily='"0 7 * * *"', weekly='""',
                    interval_minutes="0")
    config = load_config(path)
    feeds = tmp_path / "in"
    feeds.mkdir()
    with Store(config.store.path) as store:
        ingest_mod.ingest_paths(store, config, [_feed(feeds, "early", 2)], utc("2026-04-10T05:00:00"))
        sch.make_digest(store, config, "daily", "2026-04-10", utc("2026-04-11T07:00:00"))
        ingest_mod.ingest_paths(store, config, [_feed(feeds, "late", 2)], utc("2026-04-11T05:00:00"))
        ingest_mod.ingest_paths(store, config, [_feed(feeds, "yesterday", 2)], utc("2026-04-12T06:00:00"))
        ingest_mod.ingest_paths(store, config, [_feed(feeds, "today", 2)], utc("2026-04-13T06:00:00"))
    spec = sch.job_specs(config)[0]
    fired = utc("2026-04-13T07:00:05")  # not the day that starts: the one that ended at midnight
    assert sch.run_job(config, spec.id, sch.digest_work(spec, config), clock=lambda: fired) == "ok"
    with Store(config.store.path) as store:
        assert set(store.digest_dates("daily")) == {"2026-04-10", "2026-04-11", "2026-04-12"}
        assert _item_dates(store, "late") == {"2026-04-11"} and _item_dates(store, "yesterday") == {"2026-04-12"}
        assert _item_dates(store, "today") == set()
        run = store.last_run("daily-digest")
        assert run["status"] == "ok" and run["counts"]["digest.written"] == 2


def test_the_digest_a_job_makes_is_the_window_that_closed_last_before_it_fired(tmp_path):
    path = set_keys(write_config(tmp_path, paths=[]), "schedule", daily='"0 7 * * *"', weekly='"0 7 * * mon"')
    text = path.read_text(encoding="utf-8").replace("cutoff_hour = 0", "cutoff_hour = 7")
    path.write_text(text.replace('timezone = "UTC"', 'timezone = "Europe/Berlin"', 1), encoding="utf-8")
    config = load_config(path)
    assert (config.digest.cutoff_hour, config.digest.timezone) == (7, "Europe/Berlin")
    key = sch.job_digest_key(config, "daily")
    # the 14 April window opens at 07:00 Berlin time (05:00 UTC), when the job fires: the job makes the 13th
    assert key(utc("2026-04-14T05:00:00")) == "2026-04-13"
    assert key(utc("2026-04-14T04:59:59")) == "2026-04-12"
    assert sch.job_digest_key(config, "weekly")(utc("2026-04-13T05:00:00")) == "2026-W15"


def test_a_digest_job_that_gave_up_on_the_lock_is_made_by_the_next_update_job(tmp_path):
    path = set_keys(write_config(tmp_path, paths=[]), "schedule", daily='"0 7 * * *"', weekly='""',
                    fetch="false", ingest="false", lock_timeout="0.2")
    config = load_config(path)
    feeds = tmp_path / "in"
    feeds.mkdir()
    with Store(config.store.path) as store:
        ingest_mod.ingest_paths(store, config, [_feed(feeds, "sunday", 3)], utc("2026-04-12T05:00:00"))
    update, daily = sch.job_specs(config, start=utc("2026-04-13T06:00:00"))
    fired = utc("2026-04-13T07:00:00")
    other = StageLock(lock_path(config.store.path), command="run", timeout=1)
    other.acquire()  # a long manual command holds the database when the daily job fires
    try:
        assert sch.run_job(config, daily.id, sch.digest_work(daily, config), clock=lambda: fired) == "failed"
    finally:
        other.release()
    with Store(config.store.path) as store:
        assert store.digest_dates("daily") == {}
        failed = store.last_run("daily-digest")
        assert failed["status"] == "failed" and "gave up after waiting 0.2 s" in failed["problems"][0]

    next_update = fired + timedelta(minutes=60)
    assert sch.run_job(config, update.id, sch.update_work(config, [update, daily]), clock=lambda: next_update) == "ok"
    with Store(config.store.path) as store:
        assert set(store.digest_dates("daily")) == {"2026-04-12"}
        assert _item_dates(store, "sunday") == {"2026-04-12"}
        assert store.last_run("update")["counts"]["digest.written"] == 1
    # the update after that has nothing left to make
    sch.run_job(config, update.id, sch.update_work(config, [update, daily]), clock=lambda: next_update + timedelta(hours=1))
    with Store(config.store.path) as store:
        assert "digest.written" not in store.last_run("update")["counts"]


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
