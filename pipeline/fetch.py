"""Fetch: download the feeds of sources that have a URL (config, OPML and `sources add`).

The only stage that touches the network. The pieces:

- ``fetch_policy`` (pure) decides which feeds are due and when to try again
  (minimum interval, Cache-Control, Retry-After, backoff with jitter);
- ``fetch_http`` does one bounded download (timeouts, total time limit, size
  cap on the decoded body, permanent redirects seen);
- ``fetch_parse`` reads and cleans a new body, in a process pool when many
  feeds changed;
- this module runs them: a thread pool downloads (at most ``fetch.per_host``
  at once per host, ``fetch.workers`` in all), the main thread decides and
  writes every result to the store in batched transactions.

ETag and Last-Modified are sent back, so an unchanged feed answers 304 and
costs one state update; a 200 whose bytes are the ones this source sent last
time is not read again. One failing source never stops the others: its
failure is recorded (status, error, next attempt) and reported.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from . import fetch_policy as policy
from .config import Config
from .fetch_http import FetchError, HostLimits, Response, download, make_client
from .fetch_parse import ParsedFeed, parse_fetched, warm_up
from .ingest import raw_from_bytes, store_with_stories
from .interrupt import stop_requested
from .models import Problem, RawDocument, Source, StepResult
from .readers import ReadError, read_document
from .sources import OpmlError, read_opml
from .store import Store, parse_ts

log = logging.getLogger(__name__)

# Below this many changed feeds, reading them in-process beats starting workers.
POOL_THRESHOLD = 12
# Results are written in one transaction per this many sources, or per second.
BATCH_SOURCES = 64
BATCH_SECONDS = 1.0
# The status of a body that came whole but cannot be read as a feed (broken XML, say).
UNREADABLE = "invalid"


def subscribed_sources(config: Config, store: Store | None = None) -> tuple[list[Source], list[Problem]]:
    """Sources from config, the OPML file and `pipeline sources add` (in the store).

    Config wins over OPML, and both over the command line, on the same id or URL.
    """
    sources = list(config.sources)
    problems: list[Problem] = []
    taken_ids = {s.id for s in sources}
    taken_urls = {s.url for s in sources if s.url}

    def add(more: list[Source]) -> None:
        for s in more:
            if s.id not in taken_ids and s.url not in taken_urls:
                sources.append(s)
                taken_ids.add(s.id)
                taken_urls.add(s.url)

    if config.fetch.opml is not None:
        try:
            add(read_opml(config.fetch.opml.read_bytes(), default_tier=config.default_tier))
        except (OSError, OpmlError) as exc:
            problems.append(Problem(str(config.fetch.opml), str(exc)))
    if store is not None:
        add([s for s in store.sources() if s.origin == "cli" and s.url])
    return sources, problems


@dataclass(frozen=True)
class Target:
    source: Source
    url: str  # the address to use now (after a permanent redirect, the new one)
    host: str
    request_headers: dict[str, str]
    state: dict[str, Any]


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or url).lower()
    except ValueError:
        return url


def current_url(source: Source, state: dict[str, Any]) -> str | None:
    """The address a source is fetched from: after a permanent redirect of its listed URL, the new one."""
    if source.url and state.get("moved_to") and state.get("moved_from") == source.url:
        return str(state["moved_to"])
    return source.url


def followed_sources(config: Config, store: Store) -> tuple[list[Source], list[Problem]]:
    """``subscribed_sources`` as `sources list` and `sources export` show them: at their current
    address (a permanent redirect seen), with the minimum interval `sources add` stored."""
    sources, problems = subscribed_sources(config, store)
    states = store.fetch_states()
    out = []
    for s in sources:
        state = states.get(s.id, {})
        own = s.min_interval if s.min_interval is not None else state.get("min_interval")
        out.append(replace(s, url=current_url(s, state), min_interval=own))
    return out, problems


def plan(sources: list[Source], states: dict[str, dict[str, Any]], now: datetime, *, force: bool,
         only: set[str] | None) -> tuple[list[Target], Counter[str]]:
    """The sources to download now, with the conditional headers to send (pure)."""
    targets: list[Target] = []
    skipped: Counter[str] = Counter()
    for s in sources:
        if not s.url or (only is not None and s.id not in only and s.url not in only):
            continue
        state = states.get(s.id, {})
        if state.get("disabled"):
            skipped["disabled"] += 1
            continue
        if not policy.is_due(next_attempt=parse_ts(state.get("next_attempt")), disabled=None, now=now, force=force):
            skipped["not due"] += 1
            continue
        url = current_url(s, state) or s.url
        headers = {}
        if state.get("etag"):
            headers["If-None-Match"] = state["etag"]
        if state.get("last_modified"):
            headers["If-Modified-Since"] = state["last_modified"]
        targets.append(Target(s, url, _host(url), headers, state))
    return targets, skipped


class _Writer:
    """Applies store writes as they come, inside a transaction committed every
    ``BATCH_SOURCES`` sources or ``BATCH_SECONDS`` (main thread only).

    Writing each result at once keeps the main thread from long pauses in which the parse
    workers would run dry; committing in batches keeps SQLite fast. Each write runs in its
    own savepoint: one that fails is undone alone and handed to ``on_error`` with its source.
    """

    def __init__(self, store: Store, on_error: Callable[[Target, Exception], None]) -> None:
        self.store = store
        self.on_error = on_error
        self.tx: Any = None  # the open batch transaction (a context manager), if any
        self.in_batch = 0
        self.opened = 0.0
        self.reporting: set[str] = set()  # sources whose failure record is being written

    def add(self, target: Target, write: Callable[[], None]) -> None:
        if self.tx is None:
            self.tx = self.store.transaction()
            self.tx.__enter__()
            self.in_batch, self.opened = 0, time.monotonic()
        failure: Exception | None = None
        try:
            with self.store.transaction():  # a savepoint
                write()
        except Exception as exc:  # noqa: BLE001 - one source's bad write stops nothing else
            log.debug("storing %s failed", target.url, exc_info=True)
            failure = exc
        self.in_batch += 1
        if self.in_batch >= BATCH_SOURCES or time.monotonic() - self.opened > BATCH_SECONDS:
            self.flush()
        if failure is not None:
            if target.source.id in self.reporting:
                log.error("cannot record the failure of %s: %s", target.url, failure)
                return
            self.reporting.add(target.source.id)
            try:
                self.on_error(target, failure)
            finally:
                self.reporting.discard(target.source.id)

    def flush(self) -> None:
        if self.tx is not None:
            tx, self.tx = self.tx, None
            tx.__exit__(None, None, None)


def _parse_pool(config: Config) -> Executor | None:
    workers = config.fetch.parse_workers or os.cpu_count() or 1
    # fork is cheapest (workers inherit the imports) but only safe with no other thread running.
    method = "fork" if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))
    for f in [pool.submit(warm_up) for _ in range(workers)]:
        f.result()
    return pool


def _likely_new_bodies(targets: list[Target]) -> int:
    """How many targets will probably send a body to read: those with no validator to send."""
    return sum(1 for t in targets if not t.request_headers)


def fetch_sources(
    store: Store,
    config: Config,
    now: datetime,
    *,
    only: set[str] | None = None,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> StepResult:
    """Download the due feeds, store new bodies and their items, record every outcome.

    ``progress(n)`` is called as sources finish; ``on_total(n)`` once, with how many will run.
    """
    sources, problems = subscribed_sources(config, store)
    store.sync_sources([s for s in sources if s.origin != "cli"])
    targets, counts = plan(sources, store.fetch_states(), now, force=force, only=only)
    if on_total:
        on_total(len(targets))
    fc = config.fetch
    min_interval_default = timedelta(minutes=fc.min_interval)
    max_backoff = timedelta(hours=fc.max_backoff)

    def write_failed(t: Target, exc: Exception) -> None:
        failed(t, f"unexpected error while storing: {exc!r}", "error")

    writer = _Writer(store, write_failed)

    def min_interval_of(t: Target) -> timedelta:
        """The source's own minimum interval (config, OPML or `sources add`), else fetch.min_interval."""
        own = t.source.min_interval if t.source.min_interval is not None else t.state.get("min_interval")
        return timedelta(minutes=own) if own is not None else min_interval_default

    def record(t: Target, values: dict[str, Any], *, status: str, resp: Response | None, error: str | None,
               seconds: float, also: Callable[[], None] | None = None) -> None:
        """Write the new fetch state of a source, after ``also`` (its body and items), atomically."""
        def write() -> None:
            if also is not None:
                also()
            store.save_fetch_state(t.source.id, {**values, "last_fetched": now, "last_status": status,
                                                 "last_error": error})
            store.log_fetch(t.source.id, url=t.url, started=now, status=status, seconds=seconds,
                            size=len(resp.body) if resp else 0, error=error)
        writer.add(t, write)

    def failed(t: Target, message: str, status: str, *, retry_after: float | None = None,
               seconds: float = 0.0, resp: Response | None = None, extra: dict[str, Any] | None = None,
               also: Callable[[], None] | None = None) -> None:
        errors = int(t.state.get("consecutive_errors") or 0) + 1
        sched = policy.after_failure(
            now=now, errors=errors, max_backoff=max_backoff,
            jitter=policy.jitter_for(t.source.id, errors, now), retry_after=retry_after,
            min_interval=min_interval_of(t),
        )
        record(t, {"consecutive_errors": errors, "next_attempt": sched.next_attempt, **(extra or {})},
               status=status, resp=resp, error=message, seconds=seconds, also=also)
        problems.append(Problem(t.url, message))
        counts["failed"] += 1

    def validators(resp: Response) -> dict[str, Any]:
        """The ETag and Last-Modified a response carries (a 304 may bring new ones)."""
        found = {"etag": resp.header("etag"), "last_modified": resp.header("last-modified")}
        return {k: v for k, v in found.items() if v}

    def succeeded(t: Target, resp: Response, status: str, extra: dict[str, Any], error: str | None = None,
                  also: Callable[[], None] | None = None) -> None:
        sched = policy.after_success(
            now=now, min_interval=min_interval_of(t),
            max_age=policy.max_age_seconds(resp.header("cache-control")),
            retry_after=policy.retry_after_seconds(resp.header("retry-after"), now),
        )
        values = {"consecutive_errors": 0, "next_attempt": sched.next_attempt, "expires": sched.expires,
                  "last_success": now, **extra}
        if resp.moved_to:
            values.update(moved_from=t.source.url, moved_to=resp.moved_to)
        record(t, values, status=status, resp=resp, error=error, seconds=resp.seconds, also=also)

    def store_parsed(t: Target, resp: Response, doc: RawDocument, parsed: ParsedFeed) -> None:
        for w in parsed.warnings:
            log.warning("%s: %s", t.url, w)
        if parsed.error is not None:
            error = parsed.error

            def write_unreadable() -> None:
                store.add_fetched_raw(doc, t.source.id)
                store.mark_raw_failed(doc.id, error)
            # Kept, and not read again while the same bytes come back. No validators are
            # stored, so the next fetch gets the body (and its hash) rather than a 304.
            failed(t, error, UNREADABLE, seconds=resp.seconds, resp=resp, extra={"body_hash": doc.id},
                   also=write_unreadable)
            return
        counts["feeds read"] += 1
        problems.extend(parsed.problems)
        counts["empty entries"] += len(parsed.problems)
        counts["unchanged"] += parsed.skipped

        def write_items() -> None:
            outcomes: Counter[str] = Counter()
            store.add_fetched_raw(doc, t.source.id)
            for item, stories in zip(parsed.items, parsed.stories, strict=True):
                outcomes.update(store_with_stories(store, item, now, siblings=parsed.guids, split=t.source.split,
                                                   stories=stories))
            store.set_entry_hashes(t.source.id, [(i.guid, h) for i, h in zip(parsed.items, parsed.entry_hashes,
                                                                               strict=True)])
            counts.update(outcomes)  # counted once stored
        error = "; ".join(p.message for p in parsed.problems) or None
        succeeded(t, resp, str(resp.status), {"body_hash": doc.id, **validators(resp)}, error=error,
                  also=write_items)

    def handle_response(t: Target, resp: Response) -> tuple[RawDocument, Target, Response] | None:
        """Decide on a downloaded response; a new body is returned to be read."""
        retry_after = policy.retry_after_seconds(resp.header("retry-after"), now)
        if resp.status == 304:
            counts["not modified"] += 1
            succeeded(t, resp, "304", validators(resp))
            return None
        if resp.status == 410:
            reason = f"HTTP 410 Gone at {now.date().isoformat()}: the feed was removed"
            record(t, {"disabled": reason, "next_attempt": None}, status="410", resp=resp, error=reason,
                   seconds=resp.seconds)
            problems.append(Problem(t.url, f"HTTP 410 {resp.reason}: source disabled"))
            counts["disabled now"] += 1
            return None
        if resp.status >= 300 or resp.status < 200 or resp.status in (204, 206):
            message = f"HTTP {resp.status} {resp.reason}".rstrip()
            if 300 <= resp.status < 400:
                message += " without a Location header"  # a redirect with one was followed
            if retry_after is not None and resp.status in (429, 503):
                message += f" (retry after {retry_after:g} s)"
            failed(t, message, str(resp.status), retry_after=retry_after, seconds=resp.seconds, resp=resp)
            return None
        counts["fetched"] += 1
        doc = raw_from_bytes(resp.body, origin=t.source.url or t.url, media="feed", received=now,
                             headers=resp.headers)
        if doc.id == t.state.get("body_hash"):
            counts["unchanged bodies"] += 1
            if t.state.get("last_status") == UNREADABLE:  # the same broken bytes again: still broken
                failed(t, t.state.get("last_error") or "the feed cannot be read", UNREADABLE, seconds=resp.seconds,
                       resp=resp, extra={"body_hash": doc.id})
            else:
                succeeded(t, resp, str(resp.status), validators(resp))
            return None
        return doc, t, resp

    # --- the run: downloads in threads, reading in processes, writes here ----------------
    queues: dict[str, deque[Target]] = defaultdict(deque)
    for t in targets:
        queues[t.host].append(t)
    active: Counter[str] = Counter()
    downloads: dict[Future[Response], Target] = {}
    parsing: dict[Future[ParsedFeed], tuple[RawDocument, Target, Response]] = {}
    to_read: deque[tuple[RawDocument, Target, Response]] = deque()
    parse_workers = fc.parse_workers or os.cpu_count() or 1
    pool: Executor | None = None
    read_here = 0  # bodies read in this process
    stopped = False
    limits = HostLimits(fc.per_host)
    client = make_client(fc)
    # A pool only when bodies are expected: a run where every feed answers 304 forks nothing.
    # Started before any download thread when it can be (fork is only safe then).
    if _likely_new_bodies(targets) >= POOL_THRESHOLD:
        pool = _parse_pool(config)
    threads = ThreadPoolExecutor(max_workers=fc.workers, thread_name_prefix="fetch")
    try:
        def backlog() -> int:
            """Bodies downloaded and not yet read; downloads stop past a few per parse worker."""
            return len(parsing) + len(to_read)

        def dispatch() -> None:
            nonlocal stopped
            limit = 4 * parse_workers if pool is not None else POOL_THRESHOLD
            for host in list(queues):
                while queues[host] and active[host] < fc.per_host and len(downloads) < fc.workers \
                        and backlog() + len(downloads) < limit + fc.workers:
                    if stop_requested():
                        stopped = True
                        return
                    t = queues[host].popleft()
                    active[host] += 1
                    fut = threads.submit(download, client, t.url, t.request_headers, max_bytes=fc.max_bytes,
                                         total_timeout=fc.total_timeout, limits=limits)
                    downloads[fut] = t
                if not queues[host]:
                    del queues[host]

        def read_now(job: tuple[RawDocument, Target, Response]) -> None:
            doc, t, resp = job
            try:
                parsed = parse_fetched(doc, t.source.id, store.entry_hashes(t.source.id), split=t.source.split)
            except Exception as exc:  # noqa: BLE001 - one bad feed must not stop the run
                log.debug("reading %s failed", t.url, exc_info=True)
                parsed = ParsedFeed(t.source.id, (), (), (), f"unexpected error while reading: {exc!r}")
            store_parsed(t, resp, doc, parsed)
            if progress:
                progress(1)

        dispatch()
        while downloads or parsing or to_read:
            if pool is None and to_read:
                waiting = sum(len(q) for q in queues.values()) + len(downloads) + len(to_read)
                if read_here + len(to_read) >= POOL_THRESHOLD and waiting >= POOL_THRESHOLD:
                    pool = _parse_pool(config)  # many feeds changed after all
                else:
                    read_here += 1
                    read_now(to_read.popleft())
                    dispatch()
                    continue
            while to_read and pool is not None:
                job = to_read.popleft()
                known = store.entry_hashes(job[1].source.id)
                parsing[pool.submit(parse_fetched, job[0], job[1].source.id, known, split=job[1].source.split)] = job
            done, _ = wait([*downloads, *parsing], return_when=FIRST_COMPLETED, timeout=0.5)
            for fut in done:
                if fut in downloads:
                    t = downloads.pop(fut)  # type: ignore[arg-type]
                    active[t.host] -= 1
                    try:
                        job = handle_response(t, fut.result())  # type: ignore[arg-type]
                    except FetchError as exc:
                        failed(t, str(exc), "error")
                        job = None
                    except Exception as exc:  # noqa: BLE001 - recorded, and the run goes on
                        log.debug("fetching %s failed", t.url, exc_info=True)
                        failed(t, f"unexpected error: {exc!r}", "error")
                        job = None
                    if job is not None:
                        to_read.append(job)
                    elif progress:
                        progress(1)
                else:
                    job = parsing.pop(fut)  # type: ignore[arg-type]
                    try:
                        parsed = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a worker that died, say
                        parsed = ParsedFeed(job[1].source.id, (), (), (), f"unexpected error while reading: {exc!r}")
                    store_parsed(job[1], job[2], job[0], parsed)
                    if progress:
                        progress(1)
                if not stopped:
                    dispatch()  # after each result: the pool never waits for a batch of them
        writer.flush()
    finally:
        writer.flush()
        threads.shutdown(wait=True, cancel_futures=True)
        client.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if stopped:
        counts["not started (stop requested)"] += sum(len(q) for q in queues.values())
    for p in problems:
        log.warning("fetch: %s", p)
    return StepResult("fetch", {k: v for k, v in counts.items() if v}, tuple(problems))


def summary_line(result: StepResult) -> str:
    """One line for a person: fetched, not modified, failed, new items."""
    c = result.counts
    return (
        f"fetched {c.get('fetched', 0)}, not modified {c.get('not modified', 0)}, failed {c.get('failed', 0)}, "
        f"new items {c.get('new', 0)}"
    )


class AddError(ValueError):
    """A source that cannot be added; the message says why."""


def add_source(
    store: Store,
    config: Config,
    url: str,
    *,
    name: str | None = None,
    tier: int | None = None,
    kind: str | None = None,
    category: str | None = None,
    min_interval: float | None = None,
) -> Source:
    """Subscribe to a feed, or to the feed a web page announces; stored with origin "cli"."""
    from .sources import discover_feeds, domain_of, looks_like_feed, slugify

    if not url.startswith(("http://", "https://")):
        raise AddError(f"{url}: not an http(s) URL")
    feed_url = url
    with make_client(config.fetch) as client:
        try:
            resp = download(client, url, {}, max_bytes=config.fetch.max_bytes, total_timeout=config.fetch.total_timeout)
        except FetchError as exc:
            raise AddError(f"{url}: {exc}") from None
        if resp.status != 200:
            raise AddError(f"{url}: HTTP {resp.status} {resp.reason}")
        if not looks_like_feed(resp.header("content-type"), resp.body):
            feeds = discover_feeds(resp.body, resp.url)
            if not feeds:
                raise AddError(f'{url}: not a feed, and the page announces none (no <link rel="alternate">)')
            feed_url = feeds[0][0]
            try:
                resp = download(client, feed_url, {}, max_bytes=config.fetch.max_bytes,
                                total_timeout=config.fetch.total_timeout)
            except FetchError as exc:
                raise AddError(f"{feed_url} (announced by {url}): {exc}") from None
            if resp.status != 200:
                raise AddError(f"{feed_url} (announced by {url}): HTTP {resp.status} {resp.reason}")
        else:
            feed_url = resp.moved_to or url
    if name is None:  # the feed's own title
        try:
            parsed = read_document(raw_from_bytes(resp.body, origin=feed_url, media="feed", received=datetime.now(timezone.utc)))
            name = next((pd.hint.name for pd in parsed if pd.hint.name), None)
        except ReadError as exc:
            raise AddError(f"{feed_url}: {exc}") from None
    sources, _ = subscribed_sources(config, store)
    current, _ = followed_sources(config, store)
    for s, now_at in zip(sources, current, strict=True):
        if feed_url in (s.url, now_at.url):
            raise AddError(f"{feed_url}: already followed as source {s.id!r}")
    title = name or domain_of(feed_url) or feed_url
    taken = {s.id for s in store.sources()} | {s.id for s in sources}
    base = slugify(title)
    sid, n = base, 2
    while sid in taken:
        sid, n = f"{base}-{n}", n + 1
    site = url if feed_url != url else None
    source = Source(
        id=sid,
        name=title,
        tier=tier if tier is not None else config.default_tier,
        kind=kind,
        url=feed_url,
        site=site,
        match=tuple(d for d in (domain_of(site),) if d),
        origin="cli",
        category=category,
    )
    with store.transaction():
        store.add_source(source)
        if min_interval is not None:
            store.save_fetch_state(sid, {"min_interval": min_interval})
    return source


def import_sources(store: Store, config: Config, listed: list[Source]) -> tuple[list[Source], list[Source]]:
    """Store the sources of an OPML file (origin "cli"); return (added, already followed)."""
    from .sources import slugify

    sources, _ = subscribed_sources(config, store)
    urls = {s.url for s in sources if s.url}
    taken = {s.id for s in store.sources()} | {s.id for s in sources}
    added: list[Source] = []
    present: list[Source] = []
    with store.transaction():
        for s in listed:
            if s.url in urls:
                present.append(s)
                continue
            sid, n = s.id, 2
            while sid in taken:
                sid, n = f"{slugify(s.id)}-{n}", n + 1
            new = replace(s, id=sid, origin="cli")
            store.add_source(new)
            if s.min_interval is not None:
                store.save_fetch_state(sid, {"min_interval": s.min_interval})
            taken.add(sid)
            urls.add(s.url)
            added.append(new)
    return added, present
