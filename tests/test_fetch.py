"""`pipeline fetch` against a real HTTP server on 127.0.0.1, started by each test.

No mocks of httpx and nothing on the internet: the feeds are small RSS and
Atom documents built here and served by a ThreadingHTTPServer in a thread.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import logging
import os
import pty
import re
import socket
import struct
import subprocess
import sys
import termios
import zlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import brotli
import pytest

from pipeline import fetch as fetch_mod
from pipeline.config import Config, load_config
from pipeline.fetch import fetch_sources
from pipeline.config import DEFAULT_USER_AGENT
from pipeline.sources import read_opml
from pipeline.store import Store, parse_ts, ts

from .conftest import ROOT, run_cli, write_config

T1 = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)
T2 = T1 + timedelta(hours=1)
USER_AGENT = "pipeline-tests/1.0 (+fetch suite)"


# --- the server ----------------------------------------------------------------


@dataclass
class Reply:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False  # Transfer-Encoding: chunked, no Content-Length
    chunk_size: int = 512  # bytes per chunk, when chunked
    chunk_delay: float = 0.0  # seconds to wait after each chunk, when chunked
    delay: float = 0.0  # seconds to wait before answering
    stall: float = 0.0  # seconds to pause halfway through the body
    trickle: float = 0.0  # seconds to wait between 64-byte pieces of the body


@dataclass
class Seen:
    """One request as the server received it; header names are lower-case."""

    path: str
    headers: dict[str, str]


Route = Reply | Callable[[Seen], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still sleeping must never hold up the teardown
    feeds: FeedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        # The client hanging up first (timeouts, refused oversize bodies) is expected.
        if not isinstance(exc, ConnectionError):
            self.feeds.errors.append(exc)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, like a real feed host
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        feeds = self.server.feeds
        seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()})
        feeds.requests.append(seen)
        with feeds.lock:
            feeds.inflight += 1
            feeds.max_inflight = max(feeds.max_inflight, feeds.inflight)
        try:
            self._answer(feeds, seen)
        finally:
            with feeds.lock:
                feeds.inflight -= 1

    def _answer(self, feeds: FeedServer, seen: Seen) -> None:
        route = feeds.routes.get(self.path)
        if route is None:
            reply = Reply(b"no such feed", 404)
        else:
            reply = route(seen) if callable(route) else route
        if reply.delay:
            feeds.release.wait(reply.delay)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.status == 304:
            self.end_headers()
            return
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(reply.body), reply.chunk_size):
                chunk = reply.body[i : i + reply.chunk_size]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                with feeds.lock:
                    feeds.sent[self.path] = feeds.sent.get(self.path, 0) + len(chunk)
                if reply.chunk_delay:
                    self.wfile.flush()
                    if feeds.release.wait(reply.chunk_delay):
                        return
            self.wfile.write(b"0\r\n\r\n")
        elif reply.trickle:
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            for i in range(0, len(reply.body), 64):
                self.wfile.write(reply.body[i : i + 64])
                self.wfile.flush()
                if feeds.release.wait(reply.trickle):
                    return
        else:
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            half = len(reply.body) // 2
            self.wfile.write(reply.body[:half])
            if reply.stall:
                self.wfile.flush()
                self.server.feeds.release.wait(reply.stall)
            self.wfile.write(reply.body[half:])


class FeedServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        self.sent: dict[str, int] = {}  # body bytes written per path (chunked replies)
        self.errors: list[BaseException | None] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0
        self.host = host
        self.httpd = _Server((host, 0), _Handler)
        self.httpd.feeds = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def seen(self, path: str) -> list[Seen]:
        return [r for r in self.requests if r.path == path]


@contextmanager
def serving(host: str = "127.0.0.1") -> Iterator[FeedServer]:
    srv = FeedServer(host)
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.release.set()  # wake handlers that are still sleeping
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(timeout=5)
    assert not srv.errors, f"the test server itself failed: {srv.errors}"


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with serving() as srv:
        yield srv


def closed_port_url() -> str:
    """A URL on a port nothing listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/feed.xml"


# --- feeds and config ------------------------------------------------------------


def rss(site: str, *items: tuple[str, str, str]) -> bytes:
    """An RSS 2.0 feed; each item is (guid, title, text). Links are unique per site."""
    body = "".join(
        f"<item><guid isPermaLink=\"false\">{escape(guid)}</guid><title>{escape(title)}</title>"
        f"<link>https://{site}.example/{escape(guid)}</link><description>{escape(text)}</description>"
        f"<pubDate>Sat, 01 Mar 2025 07:00:00 GMT</pubDate></item>"
        for guid, title, text in items
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>{site}</title>'
        f"<link>https://{site}.example/</link><description>test feed</description>{body}</channel></rss>\n"
    ).encode()


def atom(site: str, *entries: tuple[str, str, str]) -> bytes:
    body = "".join(
        f"<entry><id>urn:{site}:{escape(eid)}</id><title>{escape(title)}</title>"
        f'<link href="https://{site}.example/{escape(eid)}"/><updated>2025-03-01T07:00:00Z</updated>'
        f"<summary>{escape(text)}</summary></entry>"
        for eid, title, text in entries
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{site}</title><id>urn:{site}</id><updated>2025-03-01T07:00:00Z</updated>{body}</feed>\n"
    ).encode()


def small_feed(site: str) -> bytes:
    return rss(site, ("one", f"{site} first story", "First text."), ("two", f"{site} second story", "Second text."))


FEED_V1 = rss(
    "alpha",
    ("a", "Alpha launches a model", "Alpha released a model today."),
    ("b", "Beta ships a patch", "Beta fixed a bug in its server."),
)
FEED_V2 = rss(
    "alpha",
    ("a", "Alpha launches a model, corrected", "Alpha released a model today, a day late."),
    ("b", "Beta ships a patch", "Beta fixed a bug in its server."),
    ("c", "Gamma raises funding", "Gamma raised a new round."),
)
# Cut off inside the root element: no reader can recover anything from it.
BROKEN = b'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"'


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"config.toml no longer has exactly one {old!r}"
    return text.replace(old, new)


def make_config(
    tmp_path: Path,
    sources: dict[str, str],
    *,
    timeout: float = 5.0,
    max_bytes: int | None = None,
    fetch: dict[str, Any] | None = None,
    source_keys: dict[str, dict[str, Any]] | None = None,
) -> tuple[Path, Config]:
    """The project config with only the given [[sources]] (id -> URL) to fetch; ``source_keys``
    adds keys to some of them (id -> {key: value})."""
    extra = "".join(
        f'\n[[sources]]\nid = "{sid}"\nname = "{sid}"\nurl = "{url}"\n'
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in (source_keys or {}).get(sid, {}).items())
        for sid, url in sources.items()
    )
    path = write_config(tmp_path)
    text = path.read_text(encoding="utf-8")
    # The shipped OPML lists real internet feeds: never fetch those here.
    text, n = re.subn(r"(?m)^opml = .*$", 'opml = ""', text)
    assert n == 1, "config.toml no longer has one fetch.opml line"
    text = _replace_once(text, "timeout = 20.0", f"timeout = {timeout}")
    text = _replace_once(text, 'user_agent = "pipeline/0.1 (+https://pipeline.example/; feed reader and digest builder)"', f'user_agent = "{USER_AGENT}"')
    if max_bytes is not None:
        text = _replace_once(text, "max_bytes = 10_000_000", f"max_bytes = {max_bytes}")
    for key, value in (fetch or {}).items():  # other [fetch] keys, as shipped in config.toml
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {json.dumps(value)}", text)
        assert n == 1, f"config.toml no longer has one {key} line"
    path.write_text(text + extra, encoding="utf-8")
    config = load_config(path)
    assert config.fetch.opml is None
    assert [s.id for s in config.sources if s.url] == list(sources)
    return path, config


def counts_without_runs(store: Store) -> dict[str, int]:
    """Row counts, leaving out the records of runs and of fetches (one per download)."""
    return {k: v for k, v in store.table_counts().items() if k not in ("runs", "fetches")}


def item_rows(store: Store) -> list[dict[str, Any]]:
    return list(store.db.query("SELECT * FROM items ORDER BY id"))


def raw_rows(store: Store, origin: str) -> list[dict[str, Any]]:
    return list(store.db.query("SELECT * FROM raw_documents WHERE origin = ? ORDER BY received", [origin]))


def titles(store: Store, source_id: str) -> set[str]:
    return {i.title for i in store.items(source=source_id)}


# --- first fetch, conditional requests, unchanged and changed bodies ---------------


def test_first_fetch_stores_the_raw_feed_and_its_items_and_sends_the_user_agent(server: FeedServer, tmp_path: Path):
    server.routes["/feed.xml"] = Reply(
        FEED_V1, headers={"Content-Type": "application/rss+xml; charset=utf-8", "ETag": '"v1"',
                          "Last-Modified": "Sat, 01 Mar 2025 06:00:00 GMT", "X-Served-By": "test"}
    )
    url = server.url("/feed.xml")
    _, config = make_config(tmp_path, {"alpha": url})
    with Store(config.store.path) as store:
        result = fetch_sources(store, config, T1)

        assert result.problems == ()
        assert result.counts == {"fetched": 1, "feeds read": 1, "new": 2}
        [raw] = raw_rows(store, url)
        assert raw["payload"] == FEED_V1
        assert raw["source_id"] == "alpha"
        assert raw["media"] == "feed"
        assert raw["parse_error"] is None
        assert raw["received"] == ts(T1)  # the fetch time
        headers = dict(map(tuple, json.loads(raw["headers"])))
        assert headers["content-type"] == "application/rss+xml; charset=utf-8"
        assert headers["etag"] == '"v1"' and headers["last-modified"] == "Sat, 01 Mar 2025 06:00:00 GMT"
        assert "date" in headers  # the server's clock, kept beside ours
        assert "x-served-by" not in headers  # only the headers worth keeping
        items = store.items(source="alpha")
        assert {i.title for i in items} == {"Alpha launches a model", "Beta ships a patch"}
        assert {i.first_seen for i in items} == {T1}
        state = store.fetch_state("alpha")
        assert state["last_status"] == "200"
        assert state["last_error"] is None
        assert state["last_fetched"] == ts(T1)

    [request] = server.requests
    assert request.headers["user-agent"] == USER_AGENT
    assert "if-none-match" not in request.headers and "if-modified-since" not in request.headers


@pytest.mark.parametrize(
    ("validator", "conditional", "value"),
    [
        ("ETag", "if-none-match", '"feed-v1"'),
        ("Last-Modified", "if-modified-since", "Sat, 01 Mar 2025 06:00:00 GMT"),
    ],
    ids=["etag", "last-modified"],
)
def test_a_validator_is_sent_back_and_a_304_changes_nothing(
    server: FeedServer, tmp_path: Path, validator: str, conditional: str, value: str
):
    def route(req: Seen) -> Reply:
        if req.headers.get(conditional) == value:
            return Reply(status=304, headers={validator: value})
        return Reply(FEED_V1, headers={validator: value})

    server.routes["/feed.xml"] = route
    _, config = make_config(tmp_path, {"alpha": server.url("/feed.xml")})
    with Store(config.store.path) as store:
        first = fetch_sources(store, config, T1)
        assert first.counts == {"fetched": 1, "feeds read": 1, "new": 2}
        before_counts, before_items = counts_without_runs(store), item_rows(store)

        second = fetch_sources(store, config, T2)

        assert second.problems == ()
        assert second.counts == {"not modified": 1}
        assert counts_without_runs(store) == before_counts  # no new raw document, no new item
        assert item_rows(store) == before_items  # nothing touched, not even `updated`
        state = store.fetch_state("alpha")
        assert state["last_status"] == "304"
        assert state["last_error"] is None
        assert state["last_fetched"] == ts(T2)
        assert state["etag" if validator == "ETag" else "last_modified"] == value

    first_request, second_request = server.requests
    assert conditional not in first_request.headers
    assert second_request.headers[conditional] == value


def test_a_server_that_ignores_conditions_and_sends_the_same_bytes_is_not_read_again(
    server: FeedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Always 200 with the full body, whatever the request says.
    server.routes["/feed.xml"] = Reply(FEED_V1, headers={"ETag": '"always-the-same"'})
    parsed: list[str] = []
    real_parse = fetch_mod.parse_fetched

    def spy(doc: Any, source_id: str, *rest: Any, **options: Any) -> Any:
        parsed.append(doc.origin)
        return real_parse(doc, source_id, *rest, **options)

    monkeypatch.setattr(fetch_mod, "parse_fetched", spy)
    url = server.url("/feed.xml")
    _, config = make_config(tmp_path, {"alpha": url})
    with Store(config.store.path) as store:
        fetch_sources(store, config, T1)
        before_counts, before_items = counts_without_runs(store), item_rows(store)

        second = fetch_sources(store, config, T2)

        assert second.problems == ()
        assert second.counts == {"fetched": 1, "unchanged bodies": 1}
        assert parsed == [url]  # read on the first fetch only
        assert counts_without_runs(store) == before_counts
        assert item_rows(store) == before_items
        assert store.fetch_state("alpha")["last_status"] == "200"
    assert server.requests[1].headers["if-none-match"] == '"always-the-same"'


def test_a_changed_feed_updates_the_edited_item_in_place_and_adds_the_new_one(server: FeedServer, tmp_path: Path):
    bodies = [FEED_V1, FEED_V2]
    server.routes["/feed.xml"] = lambda req: Reply(bodies.pop(0))
    url = server.url("/feed.xml")
    _, config = make_config(tmp_path, {"alpha": url})
    with Store(config.store.path) as store:
        fetch_sources(store, config, T1)
        before = {r["guid"]: r for r in item_rows(store)}

        second = fetch_sources(store, config, T2)

        assert second.problems == ()
        assert second.counts == {"fetched": 1, "feeds read": 1, "updated": 1, "unchanged": 1, "new": 1}
        after = {r["guid"]: r for r in item_rows(store)}
        assert set(after) == {"a", "b", "c"}
        edited = after["a"]
        assert edited["id"] == before["a"]["id"]
        assert edited["title"] == "Alpha launches a model, corrected"
        assert "a day late" in edited["body"]
        assert edited["first_seen"] == ts(T1)
        assert edited["updated"] == ts(T2)
        assert after["b"] == before["b"]
        assert after["c"]["first_seen"] == ts(T2)
        assert [r["payload"] for r in raw_rows(store, url)] == [FEED_V1, FEED_V2]
        assert counts_without_runs(store)["items"] == 3


# --- failures ------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["404", "500", "refused", "timeout", "stalled-body"])
def test_a_failing_source_is_recorded_and_reported_and_the_others_are_still_fetched(
    server: FeedServer, tmp_path: Path, failure: str
):
    server.routes["/before.xml"] = Reply(small_feed("before"))
    server.routes["/after.xml"] = Reply(small_feed("after"))
    if failure == "500":
        server.routes["/bad.xml"] = Reply(b"oops", 500)
    elif failure == "timeout":
        server.routes["/bad.xml"] = Reply(small_feed("bad"), delay=3.0)  # released at teardown
    elif failure == "stalled-body":
        server.routes["/bad.xml"] = Reply(small_feed("bad"), stall=3.0)  # headers sent, then silence
    bad = closed_port_url() if failure == "refused" else server.url("/bad.xml")  # 404: no route
    timeout = 0.5 if failure in ("timeout", "stalled-body") else 5.0
    _, config = make_config(
        tmp_path,
        {"before": server.url("/before.xml"), "bad": bad, "after": server.url("/after.xml")},
        timeout=timeout,
    )
    with Store(config.store.path) as store:
        started = time.monotonic()
        result = fetch_sources(store, config, T1)
        elapsed = time.monotonic() - started

        state = store.fetch_state("bad")
        expected_status, expected_error = {
            "404": ("404", "HTTP 404 Not Found"),
            "500": ("500", "HTTP 500 Internal Server Error"),
            "refused": ("error", "refused"),
            "timeout": ("error", "timed out"),
            "stalled-body": ("error", "timed out"),
        }[failure]
        assert state["last_status"] == expected_status
        assert expected_error.lower() in state["last_error"].lower()
        assert state["last_fetched"] == ts(T1)
        [problem] = result.problems
        assert problem.where == bad
        assert problem.message == state["last_error"]
        assert bad in str(problem)
        assert result.counts == {"fetched": 2, "feeds read": 2, "new": 4, "failed": 1}
        assert titles(store, "before") == {"before first story", "before second story"}
        assert titles(store, "after") == {"after first story", "after second story"}
        assert raw_rows(store, bad) == []
        assert store.fetch_state("after")["last_status"] == "200"
    assert elapsed < timeout + 2.0


def test_a_broken_xml_body_is_reported_with_the_parse_error_and_kept(
    server: FeedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    server.routes["/broken.xml"] = Reply(BROKEN, headers={"ETag": '"b1"'})
    server.routes["/ok.xml"] = Reply(small_feed("ok"))
    bad = server.url("/broken.xml")
    path, config = make_config(tmp_path, {"broken": bad, "ok": server.url("/ok.xml")})
    read: list[str] = []
    real_parse = fetch_mod.parse_fetched

    def spy(doc: Any, source_id: str, *rest: Any, **options: Any) -> Any:
        read.append(source_id)
        return real_parse(doc, source_id, *rest, **options)

    monkeypatch.setattr(fetch_mod, "parse_fetched", spy)
    with Store(config.store.path) as store:
        result = fetch_sources(store, config, T1)

        [problem] = result.problems
        assert problem.where == bad
        assert problem.message.startswith("not a readable feed")
        assert "line 2" in problem.message  # where the XML breaks
        [raw] = raw_rows(store, bad)
        assert raw["payload"] == BROKEN
        assert raw["parse_error"] == problem.message
        assert raw["source_id"] == "broken"
        assert store.items(source="broken") == []
        assert titles(store, "ok") == {"ok first story", "ok second story"}
        assert result.counts == {"fetched": 2, "failed": 1, "feeds read": 1, "new": 2}
        # not healthy: an error status, an error in a row, a later attempt, the reason kept
        state = store.fetch_state("broken")
        assert (state["last_status"], state["consecutive_errors"], state["last_error"]) == ("invalid", 1, problem.message)
        assert state["last_success"] is None and parse_ts(state["next_attempt"]) > T1
        assert state["etag"] is None  # so the next fetch gets the body, not a 304

        # the same broken bytes again: not read again, and still failing
        again = fetch_sources(store, config, T1 + timedelta(days=1), only={"broken"})
        assert again.counts == {"fetched": 1, "unchanged bodies": 1, "failed": 1}
        assert [p.message for p in again.problems] == [problem.message]
        assert read.count("broken") == 1
        state = store.fetch_state("broken")
        assert (state["last_status"], state["consecutive_errors"]) == ("invalid", 2)
        assert len(raw_rows(store, bad)) == 1
    status = run_cli("status", config=path)
    lines = status.out.split("Feeds (2):")[1].splitlines()
    [row] = [n for n, line in enumerate(lines) if line.split()[:1] == ["broken"]]
    assert lines[row].split()[1:2] == ["invalid"] and lines[row].split()[3] == "2"  # status, errors in a row
    assert lines[row + 1].strip() == problem.message  # the reason, under it


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversize_body_is_refused_naming_the_limit(server: FeedServer, tmp_path: Path, chunked: bool):
    big = rss("big", *((f"g{n}", f"Story number {n}", "Some text. " * 5) for n in range(30)))
    small = small_feed("small")
    assert len(big) > 4000 and len(small) < 2000
    server.routes["/big.xml"] = Reply(big, chunked=chunked)
    server.routes["/small.xml"] = Reply(small, chunked=chunked)
    bad = server.url("/big.xml")
    _, config = make_config(tmp_path, {"big": bad, "small": server.url("/small.xml")}, max_bytes=2000)
    with Store(config.store.path) as store:
        result = fetch_sources(store, config, T1)

        [problem] = result.problems
        assert problem.where == bad
        assert "limit of 2000" in problem.message
        if not chunked:
            assert f"{len(big)} bytes" in problem.message  # refused on the declared length
        state = store.fetch_state("big")
        assert state["last_status"] == "error"
        assert state["last_error"] == problem.message
        assert raw_rows(store, bad) == []
        assert store.items(source="big") == []
        assert titles(store, "small") == {"small first story", "small second story"}
        assert result.counts == {"fetched": 1, "feeds read": 1, "new": 2, "failed": 1}


# --- transport details -----------------------------------------------------------------


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
}


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_a_compressed_response_is_decoded(server: FeedServer, tmp_path: Path, encoding: str):
    body = atom("zipped", ("1", "Zipped entry one", "First."), ("2", "Zipped entry two", "Second."))
    server.routes["/feed.atom"] = Reply(
        ENCODERS[encoding](body), headers={"Content-Encoding": encoding, "Content-Type": "application/atom+xml"}
    )
    url = server.url("/feed.atom")
    _, config = make_config(tmp_path, {"zipped": url})
    with Store(config.store.path) as store:
        result = fetch_sources(store, config, T1)

        assert result.problems == ()
        assert result.counts == {"fetched": 1, "feeds read": 1, "new": 2}
        [raw] = raw_rows(store, url)
        assert raw["payload"] == body  # stored decoded, so its id is the hash of the feed itself
        assert titles(store, "zipped") == {"Zipped entry one", "Zipped entry two"}
    offered = {e.strip() for e in server.requests[0].headers.get("accept-encoding", "").split(",")}
    assert {"gzip", "deflate", "br"} <= offered


def test_a_gzip_bomb_is_stopped_at_the_decoded_size_limit(server: FeedServer, tmp_path: Path):
    bomb = gzip.compress(b"<rss>" + b" " * 3_000_000)
    assert len(bomb) < 20_000  # small on the wire, huge once decoded
    server.routes["/bomb.xml"] = Reply(bomb, headers={"Content-Encoding": "gzip"})
    server.routes["/ok.xml"] = Reply(small_feed("ok"))
    bad = server.url("/bomb.xml")
    _, config = make_config(tmp_path, {"bomb": bad, "ok": server.url("/ok.xml")}, max_bytes=100_000)
    with Store(config.store.path) as store:
        result = fetch_sources(store, config, T1)

        [problem] = result.problems
        assert problem.where == bad
        assert problem.message == "response exceeds the limit of 100000 bytes"
        assert raw_rows(store, bad) == []
        assert titles(store, "ok") == {"ok first story", "ok second story"}


@pytest.mark.parametrize("code", [301, 308])
def test_a_permanent_redirect_updates_the_stored_url(server: FeedServer, tmp_path: Path, code: int):
    server.routes["/old.xml"] = Reply(status=code, headers={"Location": server.url("/new.xml")})
    server.routes["/new.xml"] = Reply(small_feed("moved"), headers={"ETag": '"m1"'})
    url = server.url("/old.xml")
    path, config = make_config(tmp_path, {"moved": url})
    with Store(config.store.path) as store:
        result = fetch_sources(store, config, T1)

        assert result.problems == ()
        assert result.counts == {"fetched": 1, "feeds read": 1, "new": 2}
        assert titles(store, "moved") == {"moved first story", "moved second story"}
        [raw] = raw_rows(store, url)  # recorded under the configured URL
        assert raw["source_id"] == "moved"
        state = store.fetch_state("moved")
        assert (state["last_status"], state["moved_from"], state["moved_to"]) == ("200", url, server.url("/new.xml"))
        [report] = [r for r in store.source_fetch_report() if r["id"] == "moved"]
        assert report["url"] == server.url("/new.xml")

        fetch_sources(store, config, T1 + timedelta(days=1))
    assert [r.path for r in server.requests] == ["/old.xml", "/new.xml", "/new.xml"]  # straight to the new URL
    listed = run_cli("sources", "list", config=path)
    assert listed.out.splitlines()[1].split()[-1] == server.url("/new.xml")
    exported = run_cli("sources", "export", config=path)
    assert [s.url for s in read_opml(exported.out.encode())] == [server.url("/new.xml")]
    assert server.requests[2].headers["if-none-match"] == '"m1"'
    assert all(r.headers["user-agent"] == USER_AGENT for r in server.requests)


@pytest.mark.parametrize("code", [302, 307])
def test_a_temporary_redirect_keeps_the_stored_url(server: FeedServer, tmp_path: Path, code: int):
    server.routes["/old.xml"] = Reply(status=code, headers={"Location": "/new.xml"})  # relative Location
    server.routes["/new.xml"] = Reply(small_feed("moved"))
    _, config = make_config(tmp_path, {"moved": server.url("/old.xml")})
    with Store(config.store.path) as store:
        first = fetch_sources(store, config, T1)
        assert first.counts == {"fetched": 1, "feeds read": 1, "new": 2}
        assert store.fetch_state("moved")["moved_to"] is None
        [report] = store.source_fetch_report()
        assert report["url"] == server.url("/old.xml")
        fetch_sources(store, config, T1 + timedelta(days=1))
    assert [r.path for r in server.requests] == ["/old.xml", "/new.xml", "/old.xml", "/new.xml"]


def test_a_redirect_without_a_location_is_an_error_not_a_feed(server: FeedServer, tmp_path: Path):
    server.routes["/feed.xml"] = Reply(small_feed("nowhere"), status=302)  # a body, but no Location
    url = server.url("/feed.xml")
    _, config = make_config(tmp_path, {"nowhere": url})
    with Store(config.store.path) as store:
        result = fetch_sources(store, config, T1)
        assert [(p.where, p.message) for p in result.problems] == [(url, "HTTP 302 Found without a Location header")]
        assert result.counts == {"failed": 1}
        assert store.items(source="nowhere") == [] and raw_rows(store, url) == []
        state = store.fetch_state("nowhere")
        assert (state["last_status"], state["consecutive_errors"]) == ("302", 1)


# --- the command line ------------------------------------------------------------------


def test_cli_fetch_exits_0_when_every_source_succeeds(server: FeedServer, tmp_path: Path):
    server.routes["/one.xml"] = Reply(small_feed("one"))
    server.routes["/two.atom"] = Reply(atom("two", ("x", "Two entry", "Text.")))
    path, config = make_config(tmp_path, {"one": server.url("/one.xml"), "two": server.url("/two.atom")})

    result = run_cli("fetch", config=path)

    assert result.code == 0, result.err
    assert result.out.splitlines()[0].startswith("fetch:")
    assert result.out.splitlines()[0] == "fetch: fetched 2, not modified 0, failed 0, new items 3 (2 feeds read)"
    assert sorted(r.path for r in server.requests) == ["/one.xml", "/two.atom"]
    with Store(config.store.path) as store:
        assert [r["status"] for r in store.last_runs()] == ["ok"]
        assert titles(store, "two") == {"Two entry"}


def test_cli_fetch_exits_3_and_names_the_url_when_a_source_fails(server: FeedServer, tmp_path: Path):
    server.routes["/one.xml"] = Reply(small_feed("one"))
    missing = server.url("/missing.xml")
    path, config = make_config(tmp_path, {"one": server.url("/one.xml"), "missing": missing})

    result = run_cli("fetch", config=path)

    assert result.code == 3, (result.out, result.err)
    assert missing in result.err
    assert "HTTP 404" in result.err
    summary = result.out.splitlines()[0]
    assert summary.startswith("fetch:")
    assert "failed 1" in summary and "fetched 1" in summary
    with Store(config.store.path) as store:
        assert store.fetch_state("missing")["last_status"] == "404"
        assert [r["status"] for r in store.last_runs()] == ["partial"]


# --- more of the protocol: validators on a 304, connect timeout, early abort, headers --------


def test_the_default_user_agent_names_the_project_and_its_url_and_every_request_carries_it(
    server: FeedServer, tmp_path: Path
):
    assert re.fullmatch(r"pipeline/\S+ \(\+https://[^\s;]+/?;.*\)", DEFAULT_USER_AGENT), DEFAULT_USER_AGENT
    shipped = (ROOT / "config.toml").read_text(encoding="utf-8")
    assert f'user_agent = "{DEFAULT_USER_AGENT}"' in shipped  # config.toml ships the same value
    server.routes["/feed.xml"] = Reply(small_feed("ua"))
    path, _ = make_config(tmp_path, {"ua": server.url("/feed.xml")})
    text = path.read_text(encoding="utf-8")
    path.write_text(re.sub(r"(?m)^user_agent = .*$", "", text), encoding="utf-8")  # no setting: the default
    config = load_config(path)
    assert config.fetch.user_agent == DEFAULT_USER_AGENT
    with Store(config.store.path) as store:
        fetch_sources(store, config, T1)
        fetch_sources(store, config, T2, force=True)
    assert [r.headers["user-agent"] for r in server.requests] == [DEFAULT_USER_AGENT] * 2


def test_a_304_that_brings_new_validators_stores_them(server: FeedServer, tmp_path: Path):
    replies = [
        Reply(small_feed("a"), headers={"ETag": '"v1"', "Last-Modified": "Sat, 01 Mar 2025 06:00:00 GMT"}),
        Reply(status=304, headers={"ETag": '"v2"', "Last-Modified": "Sat, 01 Mar 2025 07:00:00 GMT"}),
        Reply(status=304),  # no validators this time: the stored ones stay
        Reply(status=304),
    ]
    server.routes["/feed.xml"] = lambda req: replies.pop(0)
    _, config = make_config(tmp_path, {"a": server.url("/feed.xml")})
    with Store(config.store.path) as store:
        fetch_sources(store, config, T1)
        assert fetch_sources(store, config, T2, force=True).counts == {"not modified": 1}
        state = store.fetch_state("a")
        assert (state["etag"], state["last_modified"]) == ('"v2"', "Sat, 01 Mar 2025 07:00:00 GMT")
        fetch_sources(store, config, T2, force=True)
        assert store.fetch_state("a")["etag"] == '"v2"'
        fetch_sources(store, config, T2, force=True)
    assert [r.headers.get("if-none-match") for r in server.requests] == [None, '"v1"', '"v2"', '"v2"']
    assert server.requests[3].headers["if-modified-since"] == "Sat, 01 Mar 2025 07:00:00 GMT"


def test_a_connect_timeout_is_recorded_and_the_others_are_fetched(server: FeedServer, tmp_path: Path):
    # A listening socket that never accepts, its queue already full: the kernel answers no more
    # connection attempts, so connecting hangs until the client gives up (offline, and fast).
    silent = socket.socket()
    fillers: list[socket.socket] = []
    try:
        silent.bind(("127.0.0.1", 0))
        silent.listen(0)
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(silent.getsockname())
            fillers.append(filler)
        time.sleep(0.05)
        server.routes["/ok.xml"] = Reply(small_feed("ok"))
        hung = f"http://127.0.0.1:{silent.getsockname()[1]}/feed.xml"
        _, config = make_config(tmp_path, {"hung": hung, "ok": server.url("/ok.xml")},
                                fetch={"connect_timeout": 0.5})
        with Store(config.store.path) as store:
            started = time.monotonic()
            result = fetch_sources(store, config, T1)
            elapsed = time.monotonic() - started
            assert [(p.where, p.message) for p in result.problems] == [(hung, "connection timed out")]
            state = store.fetch_state("hung")
            assert (state["last_status"], state["last_error"], state["consecutive_errors"]) == (
                "error", "connection timed out", 1)
            assert titles(store, "ok") == {"ok first story", "ok second story"}
        assert elapsed < 3.0  # the 0.5 s connect timeout, not the 5 s read timeout
    finally:
        for sock in [silent, *fillers]:
            sock.close()


def test_an_oversize_streamed_body_is_abandoned_early(server: FeedServer, tmp_path: Path):
    huge = b"<rss><channel>" + b"<!-- padding -->" * 400_000  # 6.4 MB, sent slowly in chunks
    server.routes["/huge.xml"] = Reply(huge, chunked=True, chunk_size=16_384, chunk_delay=0.005)
    url = server.url("/huge.xml")
    _, config = make_config(tmp_path, {"huge": url}, max_bytes=100_000)
    with Store(config.store.path) as store:
        started = time.monotonic()
        result = fetch_sources(store, config, T1)
        elapsed = time.monotonic() - started
        assert [p.message for p in result.problems] == ["response exceeds the limit of 100000 bytes"]
    time.sleep(0.2)  # let the server notice the closed connection
    assert server.sent["/huge.xml"] < 1_000_000  # far less than the 6.4 MB: the read stopped at the cap
    assert elapsed < 2.0  # sending it all would take over 2 s


def test_a_feed_without_content_type_is_read_by_its_bytes_without_a_warning(
    server: FeedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    # No Content-Type and no encoding declared: XML's default, UTF-8, applies.
    body = ('<rss version="2.0"><channel><title>plain</title><link>https://plain.example/</link>'
            '<item><guid>1</guid><title>Café opens</title><description>Crème brûlée.</description></item>'
            "</channel></rss>").encode()
    server.routes["/feed.xml"] = Reply(body)
    _, config = make_config(tmp_path, {"plain": server.url("/feed.xml")})
    with caplog.at_level("DEBUG", logger="pipeline"), Store(config.store.path) as store:
        result = fetch_sources(store, config, T1)
        assert result.problems == ()
        [item] = store.items(source="plain")
        assert (item.title, item.body) == ("Café opens", "Crème brûlée.")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("no Content-Type" in r.getMessage() for r in caplog.records)  # a debug line at most


# --- visibility: the progress bar, `pipeline status`, `pipeline normalize` from raw -----------


def _run_on_a_terminal(*args: str, config: Path) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; return the exit code and what it showed there."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal has a size
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_CONFIG"}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "--config", str(config), *args], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    proc.communicate(timeout=60)
    return proc.returncode, shown.decode("utf-8", "replace")


def test_a_progress_bar_shows_on_a_terminal_only_and_log_lines_stay_whole(server: FeedServer, tmp_path: Path):
    for n in range(3):
        server.routes[f"/f{n}.xml"] = Reply(small_feed(f"f{n}"))
    missing = server.url("/missing.xml")
    path, _ = make_config(tmp_path, {**{f"f{n}": server.url(f"/f{n}.xml") for n in range(3)}, "missing": missing})

    code, shown = _run_on_a_terminal("fetch", config=path)
    assert code == 3
    assert re.search(r"fetch: +\d+%\|", shown) and "4/4" in shown  # tqdm's bar: "fetch: 100%|...| 4/4"
    warning = f"WARNING: fetch: {missing}: HTTP 404 Not Found"
    assert any(part.strip() == warning for part in re.split(r"[\r\n]+", shown))  # a line of its own

    plain = run_cli("fetch", "--force", config=path)  # stderr is a pipe here: no bar
    assert plain.code == 3
    assert "%|" not in plain.err and "\r" not in plain.err
    assert warning in plain.err.splitlines()


def test_status_lists_every_feed_column(server: FeedServer, tmp_path: Path):
    server.routes["/ok.xml"] = Reply(small_feed("ok"))
    server.routes["/down.xml"] = Reply(b"down", 500)
    server.routes["/gone.xml"] = Reply(b"gone", 410)
    path, config = make_config(
        tmp_path, {"ok": server.url("/ok.xml"), "down": server.url("/down.xml"), "gone": server.url("/gone.xml")}
    )
    with Store(config.store.path) as store:
        fetch_sources(store, config, T1)
        fetch_sources(store, config, T1 + timedelta(hours=1), only={"down"})

    status = run_cli("--now", (T1 + timedelta(hours=1)).isoformat(), "status", config=path)
    assert status.code == 0, status.err
    lines = status.out.split("Feeds (3):")[1].split("\n\n")[0].splitlines()[1:]
    assert lines[0].split() == ["SOURCE", "STATUS", "LAST", "SUCCESS", "ERRORS", "NEXT", "ATTEMPT", "ITEMS"]
    rows = {line.split()[0]: (n, line.split()) for n, line in enumerate(lines[1:], 1) if not line.startswith("      ")}
    assert rows["ok"][1] == ["ok", "200", ts(T1), "0", ts(T1 + timedelta(minutes=30)), "2"]
    n, down = rows["down"]
    # two failures in a row; the next attempt waits the 30-minute minimum interval (longer than the backoff)
    assert down == ["down", "500", "-", "2", ts(T1 + timedelta(hours=1, minutes=30)), "0"]
    assert lines[n + 1].strip() == "HTTP 500 Internal Server Error"
    n, gone = rows["gone"]
    assert gone[:4] == ["gone", "410", "-", "0"] and gone[4] == "disabled:" and gone[-1] == "0"
    assert "410 Gone" in lines[n]


def test_normalize_reads_the_fetched_raw_documents_again_without_the_network(server: FeedServer, tmp_path: Path):
    server.routes["/feed.xml"] = Reply(FEED_V1)
    url = server.url("/feed.xml")
    path, config = make_config(tmp_path, {"alpha": url})
    with Store(config.store.path) as store:
        fetch_sources(store, config, T1)
        before = {r["id"]: (r["title"], r["body"], r["source_id"]) for r in item_rows(store)}
        store.db.execute("DELETE FROM items")
        store.db.conn.commit()
    server.routes.clear()  # the feed is gone: only the stored bytes can bring the items back
    requests = len(server.requests)

    result = run_cli("normalize", config=path)

    assert result.code == 0, result.err
    assert len(server.requests) == requests
    with Store(config.store.path) as store:
        after = {r["id"]: (r["title"], r["body"], r["source_id"]) for r in item_rows(store)}
    assert after == before and len(after) == 2
