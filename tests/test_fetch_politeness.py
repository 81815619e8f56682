"""Politeness and failure handling of `pipeline fetch`, against a real HTTP server on 127.0.0.1.

Per-host limits, Retry-After, Cache-Control, minimum intervals and --force,
backoff, 410 Gone, a total time limit, identical bodies from two sources, the
process pool, and a cooperative stop. The scheduling rules themselves are
checked with plain asserts at the end (fetch_policy is pure).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from pipeline import fetch as fetch_mod
from pipeline import fetch_policy as policy
from pipeline import interrupt
from pipeline.fetch import fetch_sources
from pipeline.store import Store, parse_ts, ts

from .test_fetch import (  # noqa: F401
    T1, FeedServer, Reply, Seen, make_config, raw_rows, server, serving, small_feed, titles,
)

MIN = timedelta(minutes=1)


def _state(store: Store, sid: str) -> dict[str, Any]:
    return store.fetch_state(sid)


# --- concurrency ------------------------------------------------------------------------------


def test_no_more_than_per_host_downloads_run_at_once_on_one_host(server: FeedServer, tmp_path: Path):
    feeds = {f"f{n}": server.url(f"/f{n}.xml") for n in range(8)}
    for n in range(8):
        server.routes[f"/f{n}.xml"] = Reply(small_feed(f"f{n}"), delay=0.25)
    _, config = make_config(tmp_path, feeds, fetch={"per_host": 2, "workers": 8})
    with Store(config.store.path) as store:
        started = time.monotonic()
        result = fetch_sources(store, config, T1)
        elapsed = time.monotonic() - started

        assert result.problems == ()
        assert result.counts["fetched"] == 8
    assert server.max_inflight == 2  # the limit is held, and used
    assert elapsed < 8 * 0.25  # but downloads did overlap


def test_the_per_host_limit_counts_the_host_a_redirect_leads_to(server: FeedServer, tmp_path: Path):
    # Four feeds on this host, four more on another host that each redirect here: eight
    # downloads from this host in the end, never more than two at once.
    for n in range(8):
        server.routes[f"/f{n}.xml"] = Reply(small_feed(f"f{n}"), delay=0.2)
    with serving("127.0.0.2") as other:
        for n in range(4, 8):
            other.routes[f"/r{n}.xml"] = Reply(status=302, headers={"Location": server.url(f"/f{n}.xml")})
        feeds = {f"f{n}": server.url(f"/f{n}.xml") for n in range(4)}
        feeds |= {f"f{n}": other.url(f"/r{n}.xml") for n in range(4, 8)}
        _, config = make_config(tmp_path, feeds, fetch={"per_host": 2, "workers": 8})
        with Store(config.store.path) as store:
            result = fetch_sources(store, config, T1)
            assert result.problems == ()
            assert result.counts["fetched"] == 8
    assert len(server.requests) == 8
    assert server.max_inflight == 2


def test_the_worker_pool_bounds_downloads_over_all_hosts(server: FeedServer, tmp_path: Path):
    for n in range(6):
        server.routes[f"/f{n}.xml"] = Reply(small_feed(f"f{n}"), delay=0.2)
    _, config = make_config(
        tmp_path, {f"f{n}": server.url(f"/f{n}.xml") for n in range(6)}, fetch={"per_host": 8, "workers": 3}
    )
    with Store(config.store.path) as store:
        fetch_sources(store, config, T1)
    assert server.max_inflight == 3


# --- scheduling: minimum interval, Cache-Control, Retry-After, backoff, --force ------------------


def test_a_feed_is_not_fetched_again_before_its_minimum_interval_unless_forced(server: FeedServer, tmp_path: Path):
    server.routes["/feed.xml"] = lambda req: (
        Reply(status=304) if req.headers.get("if-none-match") == '"v1"' else Reply(small_feed("a"), headers={"ETag": '"v1"'})
    )
    _, config = make_config(tmp_path, {"a": server.url("/feed.xml")}, fetch={"min_interval": 30.0})
    with Store(config.store.path) as store:
        fetch_sources(store, config, T1)
        assert parse_ts(_state(store, "a")["next_attempt"]) == T1 + 30 * MIN

        early = fetch_sources(store, config, T1 + 10 * MIN)
        assert early.counts == {"not due": 1}
        assert len(server.requests) == 1

        forced = fetch_sources(store, config, T1 + 10 * MIN, force=True)
        assert forced.counts == {"not modified": 1}
        assert server.requests[-1].headers["if-none-match"] == '"v1"'  # --force still asks conditionally

        due = fetch_sources(store, config, T1 + 41 * MIN)
        assert due.counts == {"not modified": 1}
    assert len(server.requests) == 3


def test_a_source_with_its_own_minimum_interval_waits_for_it(server: FeedServer, tmp_path: Path):
    server.routes["/slow.xml"] = Reply(small_feed("slow"))
    server.routes["/usual.xml"] = Reply(small_feed("usual"))
    _, config = make_config(
        tmp_path, {"slow": server.url("/slow.xml"), "usual": server.url("/usual.xml")},
        fetch={"min_interval": 30.0}, source_keys={"slow": {"min_interval": 90}},
    )
    assert [s.min_interval for s in config.sources if s.url] == [90.0, None]
    with Store(config.store.path) as store:
        fetch_sources(store, config, T1)
        assert parse_ts(_state(store, "slow")["next_attempt"]) == T1 + 90 * MIN
        at_60 = fetch_sources(store, config, T1 + 60 * MIN)
        assert at_60.counts == {"not due": 1, "fetched": 1, "unchanged bodies": 1}  # only "usual" was due
        at_91 = fetch_sources(store, config, T1 + 91 * MIN)
        assert at_91.counts["fetched"] == 2
    assert [r.path for r in server.requests].count("/slow.xml") == 2


def test_backoff_after_a_failure_never_comes_sooner_than_the_minimum_interval(server: FeedServer, tmp_path: Path):
    server.routes["/down.xml"] = Reply(b"down", 500)
    _, config = make_config(tmp_path, {"down": server.url("/down.xml")}, fetch={"min_interval": 30.0},
                            source_keys={"down": {"min_interval": 90}})
    with Store(config.store.path) as store:
        fetch_sources(store, config, T1)
        state = _state(store, "down")
        assert state["consecutive_errors"] == 1
        # the first backoff is about 10 minutes; the source asks for 90 between two fetches
        assert parse_ts(state["next_attempt"]) == T1 + 90 * MIN
        assert fetch_sources(store, config, T1 + 60 * MIN).counts == {"not due": 1}
    assert len(server.requests) == 1


def test_cache_control_max_age_longer_than_the_interval_is_respected(server: FeedServer, tmp_path: Path):
    server.routes["/feed.xml"] = Reply(small_feed("a"), headers={"Cache-Control": "public, max-age=7200"})
    _, config = make_config(tmp_path, {"a": server.url("/feed.xml")}, fetch={"min_interval": 30.0})
    with Store(config.store.path) as store:
        fetch_sources(store, config, T1)
        state = _state(store, "a")
        assert parse_ts(state["next_attempt"]) == T1 + timedelta(hours=2)
        assert parse_ts(state["expires"]) == T1 + timedelta(hours=2)
        assert fetch_sources(store, config, T1 + timedelta(hours=1)).counts == {"not due": 1}
        assert fetch_sources(store, config, T1 + timedelta(hours=2)).counts["fetched"] == 1
    assert len(server.requests) == 2


@pytest.mark.parametrize(("code", "header"), [(429, "7200"), (503, "Sat, 01 Mar 2025 10:00:00 GMT")])
def test_retry_after_on_429_and_503_delays_the_next_attempt(
    server: FeedServer, tmp_path: Path, code: int, header: str
):
    server.routes["/busy.xml"] = Reply(b"slow down", code, headers={"Retry-After": header})
    server.routes["/ok.xml"] = Reply(small_feed("ok"))
    busy = server.url("/busy.xml")
    _, config = make_config(tmp_path, {"busy": busy, "ok": server.url("/ok.xml")})
    with Store(config.store.path) as store:
        result = fetch_sources(store, config, T1)

        [problem] = result.problems
        assert problem.where == busy
        assert f"HTTP {code}" in problem.message and "retry after 7200 s" in problem.message
        state = _state(store, "busy")
        assert state["last_status"] == str(code)
        assert state["consecutive_errors"] == 1
        assert parse_ts(state["next_attempt"]) == T1 + timedelta(hours=2)  # 2 h beats the 10 min backoff
        assert titles(store, "ok") == {"ok first story", "ok second story"}

        later = fetch_sources(store, config, T1 + timedelta(hours=1))
        assert later.counts == {"not due": 1, "fetched": 1, "unchanged bodies": 1}  # "ok" is due again
        fetch_sources(store, config, T1 + timedelta(hours=1), force=True)
    assert [r.path for r in server.requests].count("/busy.xml") == 2


def test_failures_back_off_exponentially_and_a_success_resets_the_count(server: FeedServer, tmp_path: Path):
    replies = [Reply(b"down", 500), Reply(b"down", 500), Reply(b"down", 500), Reply(small_feed("a"))]
    server.routes["/feed.xml"] = lambda req: replies.pop(0)
    # no minimum interval, so the backoff alone sets each wait (the floor is tested below)
    _, config = make_config(tmp_path, {"a": server.url("/feed.xml")}, fetch={"min_interval": 0.0})
    waits = []
    with Store(config.store.path) as store:
        now = T1
        for errors in (1, 2, 3):
            fetch_sources(store, config, now)
            state = _state(store, "a")
            assert state["consecutive_errors"] == errors
            assert state["last_status"] == "500"
            waits.append(parse_ts(state["next_attempt"]) - now)
            assert fetch_sources(store, config, now + waits[-1] - MIN).counts == {"not due": 1}
            now += waits[-1]
        fetch_sources(store, config, now)
        state = _state(store, "a")
        assert (state["consecutive_errors"], state["last_status"], state["last_success"]) == (0, "200", ts(now))
        assert [f["status"] for f in store.fetch_log("a")] == ["500", "500", "500", "200"]
    base = 10 * MIN
    for n, wait in enumerate(waits):
        assert base * 2**n * 0.75 <= wait <= base * 2**n * 1.25  # doubling, with jitter
    assert len(server.requests) == 4


def test_410_gone_disables_the_source_with_a_reason(server: FeedServer, tmp_path: Path):
    server.routes["/gone.xml"] = Reply(b"gone", 410)
    gone = server.url("/gone.xml")
    _, config = make_config(tmp_path, {"gone": gone})
    with Store(config.store.path) as store:
        result = fetch_sources(store, config, T1)
        assert [p.where for p in result.problems] == [gone]
        state = _state(store, "gone")
        assert state["last_status"] == "410"
        assert "410 Gone" in state["disabled"]

        again = fetch_sources(store, config, T1 + timedelta(days=2), force=True)
        assert again.counts == {"disabled": 1}
    assert len(server.requests) == 1  # never asked again, even with --force


def test_a_download_that_trickles_is_cut_at_the_total_time_limit(server: FeedServer, tmp_path: Path):
    server.routes["/slow.xml"] = Reply(small_feed("slow") * 4, trickle=0.1)  # each piece within the read timeout
    server.routes["/ok.xml"] = Reply(small_feed("ok"))
    slow = server.url("/slow.xml")
    _, config = make_config(
        tmp_path, {"slow": slow, "ok": server.url("/ok.xml")}, timeout=1.0, fetch={"total_timeout": 1.0}
    )
    with Store(config.store.path) as store:
        started = time.monotonic()
        result = fetch_sources(store, config, T1)
        elapsed = time.monotonic() - started

        [problem] = result.problems
        assert problem.where == slow
        assert "longer than the limit of 1 seconds" in problem.message
        assert titles(store, "ok") == {"ok first story", "ok second story"}
    assert elapsed < 3.0


# --- bodies -------------------------------------------------------------------------------------


def test_two_sources_serving_identical_bytes_are_each_read_and_the_body_is_kept_once(
    server: FeedServer, tmp_path: Path
):
    body = small_feed("twin")
    server.routes["/a.xml"] = Reply(body)
    server.routes["/b.xml"] = Reply(body)
    _, config = make_config(tmp_path, {"a": server.url("/a.xml"), "b": server.url("/b.xml")})
    with Store(config.store.path) as store:
        first = fetch_sources(store, config, T1, only={"a"})
        assert first.counts == {"fetched": 1, "feeds read": 1, "new": 2}
        # The second copy is read too (not skipped as a body stored for another source); its
        # entries are the same stories at the same URLs: copies of the first source's items,
        # which keep their content and their source.
        second = fetch_sources(store, config, T1, only={"b"})
        assert second.counts == {"fetched": 1, "feeds read": 1, "duplicate": 2}
        assert titles(store, "a") == {"twin first story", "twin second story"}
        assert titles(store, "b") == set()
        # one raw document for the two, still owned by the source that sent it first
        rows = list(store.db.query("SELECT id, source_id, origin FROM raw_documents"))
        assert [(r["source_id"], r["origin"]) for r in rows] == [("a", server.url("/a.xml"))]
        assert _state(store, "a")["body_hash"] == _state(store, "b")["body_hash"] == rows[0]["id"]
        # the next time, each source sees its own last body again: nothing is read
        again = fetch_sources(store, config, T1 + timedelta(days=1))
        assert again.counts == {"fetched": 2, "unchanged bodies": 2}
        assert store.db.execute("SELECT COUNT(*) FROM raw_documents").fetchone()[0] == 1


def test_many_changed_feeds_are_read_in_worker_processes(server: FeedServer, tmp_path: Path):
    n = fetch_mod.POOL_THRESHOLD + 2
    for i in range(n):
        server.routes[f"/f{i}.xml"] = Reply(small_feed(f"site{i}"))
    server.routes["/broken.xml"] = Reply(b"<rss")
    feeds = {f"f{i}": server.url(f"/f{i}.xml") for i in range(n)} | {"broken": server.url("/broken.xml")}
    _, config = make_config(tmp_path, feeds, fetch={"parse_workers": 2})
    with Store(config.store.path) as store:
        result = fetch_sources(store, config, T1)

        assert result.counts == {"fetched": n + 1, "feeds read": n, "new": 2 * n, "failed": 1}
        assert [p.where for p in result.problems] == [server.url("/broken.xml")]
        assert all(titles(store, f"f{i}") == {f"site{i} first story", f"site{i} second story"} for i in range(n))
        assert raw_rows(store, server.url("/broken.xml"))[0]["parse_error"]


def test_no_parse_pool_is_started_when_every_feed_answers_304(
    server: FeedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    n = fetch_mod.POOL_THRESHOLD + 2
    for i in range(n):
        server.routes[f"/f{i}.xml"] = lambda req, i=i: (
            Reply(status=304) if req.headers.get("if-none-match") == f'"e{i}"'
            else Reply(small_feed(f"site{i}"), headers={"ETag": f'"e{i}"'})
        )
    started: list[int] = []
    real_pool = fetch_mod._parse_pool

    def counting_pool(config: Any) -> Any:
        started.append(1)
        return real_pool(config)

    monkeypatch.setattr(fetch_mod, "_parse_pool", counting_pool)
    _, config = make_config(tmp_path, {f"f{i}": server.url(f"/f{i}.xml") for i in range(n)},
                            fetch={"parse_workers": 2})
    with Store(config.store.path) as store:
        assert fetch_sources(store, config, T1).counts["new"] == 2 * n
        assert started == [1]  # many new feeds: read in a pool
        assert fetch_sources(store, config, T1, force=True).counts == {"not modified": n}
        assert started == [1]  # nothing to read: no pool


def test_an_unexpected_error_in_one_source_is_recorded_and_the_others_go_on(
    server: FeedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    server.routes["/a.xml"] = Reply(small_feed("a"))
    server.routes["/b.xml"] = Reply(small_feed("b"))
    real = fetch_mod.parse_fetched

    def flaky(doc: Any, source_id: str, *rest: Any, **options: Any) -> Any:
        if source_id == "a":
            raise RuntimeError("reader bug")
        return real(doc, source_id, *rest, **options)

    monkeypatch.setattr(fetch_mod, "parse_fetched", flaky)
    _, config = make_config(tmp_path, {"a": server.url("/a.xml"), "b": server.url("/b.xml")})
    with Store(config.store.path) as store:
        result = fetch_sources(store, config, T1)
        [problem] = result.problems
        assert problem.where == server.url("/a.xml") and "reader bug" in problem.message
        assert titles(store, "b") == {"b first story", "b second story"}


def test_a_stop_request_starts_no_new_download(server: FeedServer, tmp_path: Path):
    server.routes["/a.xml"] = Reply(small_feed("a"))
    _, config = make_config(tmp_path, {"a": server.url("/a.xml")})
    interrupt.request_stop()
    try:
        with Store(config.store.path) as store:
            result = fetch_sources(store, config, T1)
            assert result.counts == {"not started (stop requested)": 1}
            assert _state(store, "a")["last_fetched"] is None
    finally:
        interrupt.reset()
    assert server.requests == []


# --- the pure scheduling rules ------------------------------------------------------------------


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)
    assert policy.retry_after_seconds("120", now) == 120
    assert policy.retry_after_seconds("Sat, 01 Mar 2025 09:00:00 GMT", now) == 3600
    assert policy.retry_after_seconds("Sat, 01 Mar 2025 07:00:00 GMT", now) == 0  # in the past
    assert policy.retry_after_seconds("soon", now) is None
    assert policy.retry_after_seconds(str(10**9), now) == policy.MAX_RETRY_AFTER.total_seconds()


def test_max_age_reads_cache_control():
    assert policy.max_age_seconds("public, max-age=600") == 600
    assert policy.max_age_seconds("no-cache") == 0
    assert policy.max_age_seconds("private") is None
    assert policy.max_age_seconds("max-age=99999999") == policy.MAX_CACHE_AGE.total_seconds()


def test_backoff_doubles_up_to_the_cap_and_jitter_spreads_it():
    cap = timedelta(hours=24)
    assert [policy.backoff(n, max_backoff=cap, jitter=0.5) for n in (1, 2, 3)] == [10 * MIN, 20 * MIN, 40 * MIN]
    assert policy.backoff(30, max_backoff=cap, jitter=0.5) == cap
    assert policy.backoff(1, max_backoff=cap, jitter=0.0) == 7.5 * MIN
    spread = {policy.jitter_for(f"s{n}", 1, T1) for n in range(20)}
    assert len(spread) == 20 and all(0 <= j < 1 for j in spread)
    assert policy.jitter_for("s", 1, T1) == policy.jitter_for("s", 1, T1)  # the same on a re-run


def test_due_rules():
    assert policy.is_due(next_attempt=None, disabled=None, now=T1, force=False)
    assert not policy.is_due(next_attempt=T1 + MIN, disabled=None, now=T1, force=False)
    assert policy.is_due(next_attempt=T1 + MIN, disabled=None, now=T1, force=True)
    assert not policy.is_due(next_attempt=None, disabled="410 Gone", now=T1, force=True)


def test_fetch_settings_are_validated_with_their_dotted_keys(tmp_path: Path):
    from pipeline.config import ConfigError, load_config

    path, _ = make_config(tmp_path, {})
    text = path.read_text(encoding="utf-8")
    for key, bad in (("per_host", "0"), ("workers", "0"), ("total_timeout", "-1.0"), ("min_interval", '"often"')):
        text = text.replace(f"\n{key} = ", f"\n{key} = {bad}\n# was: ", 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert set(caught.value.problems) == {
        "fetch.per_host: must be between 1 and 64",
        "fetch.workers: must be between 1 and 256",
        "fetch.total_timeout: must be greater than 0",
        "fetch.min_interval: expected a number, got a string",
    }
