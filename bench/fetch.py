"""Benchmark of the fetch stage against lemon24/reader, on feeds served from 127.0.0.1.

    python bench/fetch.py            # 500 feeds x 50 entries (a few minutes)
    python bench/fetch.py --feeds 60 # a quick run

It generates N feeds of 50 entries each (bodies of a few KB of newsletter-like
HTML), serves them from a local HTTP server in a separate process (ETag and
Last-Modified honoured, spread over 10 loopback addresses so per-host limits
apply as with real publishers), and times, each in its own process so peak
memory is its own:

  (a) our first `fetch` of every feed into an empty store (download, read,
      clean to Markdown, store raw documents and items);
  (b) our second `fetch --force` when nothing changed (every feed should 304);
  (c) reader's `update_feeds()` on the same feeds into an empty database;
  and, alone, the libraries our pipeline spends its time in: feedparser on a
  sample of feeds, and on their entry bodies the Beautiful Soup tree that
  markdownify converts, markdownify's conversion and our whole html_to_markdown,
  scaled to all feeds and entries; their sum over the CPUs is the floor for (a).

The server counts its answers (200, 304, other) for each phase; reader's
errors, if any, are printed.

Targets: (a) at least 2x faster than (c); (b) under 10% of (a) with at least
99% of the requests answered 304. Needs the `bench` extra for (c):
pip install -e '.[bench]'  (reader and sgmllib3k).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
HOSTS = [f"127.0.0.{n}" for n in range(1, 11)]
ENTRIES = 50
WORDS = (
    "model weights open release policy compute export controls frontier safety evaluation benchmark "
    "inference cluster accelerator vulnerability patch disclosure agency regulation training dataset "
    "license agentic researchers announced quarter funding startup chips datacenter power grid senate "
    "committee hearing draft framework audit red-team incident response supply chain firmware"
).split()


# --- the feeds ------------------------------------------------------------------------


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def entry_html(rng: random.Random, feed: int, entry: int) -> str:
    """About 4 KB of HTML shaped like a newsletter issue section."""
    parts = [f"<h2>{escape(_sentence(rng, 6))}</h2>"]
    for p in range(6):
        link = f'<a href="https://site{feed}.example/story/{entry}/{p}?utm_source=feed">{rng.choice(WORDS)}</a>'
        parts.append(
            f"<p>{escape(_sentence(rng, 18))} <strong>{escape(_sentence(rng, 4))}</strong> {link} "
            f"{escape(_sentence(rng, 22))}</p>"
        )
        if p == 2:
            parts.append("<ul>" + "".join(f"<li>{escape(_sentence(rng, 9))}</li>" for _ in range(4)) + "</ul>")
        if p == 4:
            parts.append(f"<blockquote><p>{escape(_sentence(rng, 25))}</p></blockquote>")
    parts.append(f'<p><img src="https://site{feed}.example/img/{entry}.png" alt="chart" width="600"></p>')
    return "\n".join(parts)


def feed_xml(feed: int) -> bytes:
    rng = random.Random(feed)
    items = []
    for e in range(ENTRIES):
        when = datetime(2026, 4, 1, tzinfo=timezone.utc).timestamp() + feed * 60 + e * 3600
        items.append(
            f"<item><title>{escape(_sentence(rng, 7))}</title>"
            f"<link>https://site{feed}.example/story/{e}</link>"
            f'<guid isPermaLink="false">site{feed}-{e}</guid>'
            f"<pubDate>{format_datetime(datetime.fromtimestamp(when, timezone.utc), usegmt=True)}</pubDate>"
            f"<description><![CDATA[{entry_html(rng, feed, e)}]]></description></item>"
        )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>Feed {feed}</title>'
        f"<link>https://site{feed}.example/</link><description>bench feed {feed}</description>"
        + "".join(items)
        + "</channel></rss>\n"
    ).encode()


def feed_url(port: int, feed: int) -> str:
    return f"http://{HOSTS[feed % len(HOSTS)]}:{port}/feed/{feed}.xml"


# --- the server (its own process) ------------------------------------------------------


def serve(n_feeds: int, port_queue: Any, stop: Any, answered: Any) -> None:
    """Serve the feeds; ``answered`` (a shared array) counts the 200s, 304s and other answers."""
    bodies = {f"/feed/{i}.xml": feed_xml(i) for i in range(n_feeds)}
    etags = {p: '"' + hashlib.sha1(b).hexdigest()[:16] + '"' for p, b in bodies.items()}
    modified = "Wed, 01 Apr 2026 00:00:00 GMT"

    def count(slot: int) -> None:
        with answered.get_lock():
            answered[slot] += 1

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = bodies.get(self.path)
            if body is None:
                count(2)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.headers.get("If-None-Match") == etags[self.path]:
                count(1)
                self.send_response(304)
                self.send_header("ETag", etags[self.path])
                self.end_headers()
                return
            count(0)
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("ETag", etags[self.path])
            self.send_header("Last-Modified", modified)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    import threading

    servers = []
    port = 0
    for host in HOSTS:
        httpd = ThreadingHTTPServer((host, port), Handler)
        httpd.daemon_threads = True
        port = httpd.server_address[1]
        servers.append(httpd)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port_queue.put(port)
    stop.wait()


# --- the contenders (each in a subprocess) ----------------------------------------------


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + kids) / 1024


def phase_ours(workdir: Path, force: bool) -> dict[str, Any]:
    from pipeline.config import load_config
    from pipeline.fetch import fetch_sources
    from pipeline.store import Store

    config = load_config(workdir / "config.toml")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with Store(config.store.path) as store:
        cpu0 = cpu_seconds()
        started = time.perf_counter()
        result = fetch_sources(store, config, now, force=force)
        seconds = time.perf_counter() - started
        items = store.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    return {"seconds": seconds, "counts": result.counts, "problems": len(result.problems), "items": items,
            "peak_mb": peak_mb(), "cpu": cpu_seconds() - cpu0, "load": os.getloadavg()[0]}


def phase_reader(workdir: Path, urls: list[str]) -> dict[str, Any]:
    from reader import make_reader

    reader = make_reader(str(workdir / "reader.sqlite"))
    for url in urls:
        reader.add_feed(url)
    cpu0 = cpu_seconds()
    started = time.perf_counter()
    reader.update_feeds(workers=12)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu0
    entries = reader.get_entry_counts().total
    failed = [f for f in reader.get_feeds() if f.last_exception]
    messages = sorted({f"{f.last_exception.type_name}: {f.last_exception.value_str}" for f in failed})
    reader.close()
    return {"seconds": seconds, "items": entries, "errors": len(failed), "error_messages": messages[:5],
            "peak_mb": peak_mb(), "cpu": cpu, "load": os.getloadavg()[0]}


def phase_libraries(n_feeds: int, sample_feeds: int) -> dict[str, Any]:
    """The libraries alone, on one CPU: feedparser on a sample of feeds, and on their entry bodies
    the Beautiful Soup tree markdownify works on, markdownify's conversion of it, and our whole
    html_to_markdown (tree, clean-up, conversion); each scaled to every feed or entry."""
    import feedparser
    from bs4 import BeautifulSoup

    from bs4 import Tag

    from pipeline.normalize import _converter, _Soup, _Tag, html_to_markdown

    bodies = [feed_xml(i) for i in range(sample_feeds)]
    started = time.process_time()
    parsed = [feedparser.parse(b, sanitize_html=False, resolve_relative_uris=False) for b in bodies]
    feedparser_s = (time.process_time() - started) * n_feeds / sample_feeds
    htmls = [e.description for p in parsed for e in p.entries]
    scale = (n_feeds * ENTRIES) / len(htmls)
    started = time.process_time()
    soups = [BeautifulSoup(h, "html.parser") for h in htmls]
    soup_s = (time.process_time() - started) * scale
    started = time.process_time()
    for h in htmls:
        _Soup(h, "html.parser", element_classes={Tag: _Tag})  # the same tree, built with less work
    lean_soup_s = (time.process_time() - started) * scale
    started = time.process_time()
    for soup in soups:
        _converter.convert_soup(soup)
    markdownify_s = (time.process_time() - started) * scale
    started = time.process_time()
    for h in htmls:
        html_to_markdown(h)
    ours_s = (time.process_time() - started) * scale
    return {"feedparser_s": feedparser_s, "soup_s": soup_s, "lean_soup_s": lean_soup_s, "markdownify_s": markdownify_s,
            "html_to_markdown_s": ours_s, "sampled_feeds": sample_feeds}


# --- the driver ----------------------------------------------------------------------------


def _run_phase(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"phase {args[:2]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", type=int, default=500, help="number of feeds (default 500)")
    ap.add_argument("--sample", type=int, default=40, help="feeds sampled to time the libraries alone")
    ap.add_argument("--skip-reader", action="store_true", help="do not run the reader baseline")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.phase:
        workdir = Path(args.workdir)
        if args.phase in ("first", "second"):
            out = phase_ours(workdir, force=args.phase == "second")
        elif args.phase == "reader":
            out = phase_reader(workdir, json.loads((workdir / "urls.json").read_text()))
        else:
            out = phase_libraries(args.feeds, min(args.sample, args.feeds))
        print(json.dumps(out))
        return

    if not args.skip_reader:
        try:
            import reader  # noqa: F401
        except ImportError as exc:
            raise SystemExit(
                f"the reader baseline cannot be imported ({exc}).\n"
                "Install the bench extra: pip install -e '.[bench]'  (reader and sgmllib3k), "
                "or run with --skip-reader."
            ) from None

    ctx = multiprocessing.get_context("spawn")
    port_queue, stop = ctx.Queue(), ctx.Event()
    answered = ctx.Array("i", 3)  # 200, 304, other: as the server saw them
    server = ctx.Process(target=serve, args=(args.feeds, port_queue, stop, answered), daemon=True)
    server.start()
    port = port_queue.get(timeout=300)
    cpus = os.cpu_count() or 1
    total_entries = args.feeds * ENTRIES
    print(f"{args.feeds} feeds x {ENTRIES} entries = {total_entries} entries, served from "
          f"{len(HOSTS)} loopback hosts; {cpus} CPUs")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-fetch-") as tmp:
            work = Path(tmp)
            urls = [feed_url(port, i) for i in range(args.feeds)]
            (work / "urls.json").write_text(json.dumps(urls))
            outlines = "".join(
                f'<outline type="rss" text="Feed {i}" xmlUrl="{u}" tier="2"/>' for i, u in enumerate(urls)
            )
            (work / "feeds.opml").write_text(f'<opml version="2.0"><head/><body>{outlines}</body></opml>')
            (work / "config.toml").write_text(
                f'[store]\npath = "{work / "pipeline.db"}"\n[ingest]\npaths = []\non_run = false\n'
                f'[fetch]\nopml = "{work / "feeds.opml"}"\n'
            )
            phases = [("first", ["--phase", "first"]), ("second", ["--phase", "second"])]
            if not args.skip_reader:
                phases.append(("reader", ["--phase", "reader"]))
            phases.append(("libraries", ["--phase", "libraries", "--feeds", str(args.feeds),
                                         "--sample", str(args.sample)]))
            res: dict[str, dict[str, Any]] = {}
            served: dict[str, tuple[int, int, int]] = {}
            for name, extra in phases:
                print(f"... {name}", file=sys.stderr, flush=True)
                before = tuple(answered)
                res[name] = _run_phase([*extra, "--workdir", str(work)])
                served[name] = tuple(x - y for x, y in zip(answered, before, strict=True))  # type: ignore[assignment]
    finally:
        stop.set()
        server.join(timeout=5)
        if server.is_alive():
            server.terminate()

    a, b, libs = res["first"], res["second"], res["libraries"]
    print()
    print(f"{'run':<44}{'seconds':>9}{'CPU s':>8}{'entries/s':>11}{'items':>8}{'peak MB':>9}{'load':>6}")
    print(f"{'(a) ours, first fetch + store':<44}{a['seconds']:>9.1f}{a['cpu']:>8.1f}"
          f"{total_entries / a['seconds']:>11.0f}{a['items']:>8}{a['peak_mb']:>9.0f}{a['load']:>6.1f}")
    print(f"{'(b) ours, second fetch --force (unchanged)':<44}{b['seconds']:>9.2f}{b['cpu']:>8.1f}{'':>11}"
          f"{b['items']:>8}{b['peak_mb']:>9.0f}{b['load']:>6.1f}")
    if "reader" in res:
        c = res["reader"]
        print(f"{'(c) reader 3.x update_feeds, first':<44}{c['seconds']:>9.1f}{c['cpu']:>8.1f}"
              f"{c['items'] / c['seconds']:>11.0f}{c['items']:>8}{c['peak_mb']:>9.0f}{c['load']:>6.1f}")
    print("(CPU s: the process and its workers; load: 1-minute load average at the end. Other work on the "
          "machine slows the wall-clock figures; each ratio compares runs of the same moment.)")
    print(f"\nfirst-fetch counts: {a['counts']}  problems: {a['problems']}")
    print(f"second-fetch counts: {b['counts']}  problems: {b['problems']}")
    if "reader" in res:
        c = res["reader"]
        print(f"reader: {c['errors']} feed(s) with an error" + "".join(f"\n  {m}" for m in c["error_messages"]))
    print("\nanswers the server sent (200 / 304 / other):")
    for name in served:
        ok, not_modified, other = served[name]
        if ok or not_modified or other:
            print(f"  {name:<8} {ok:>6} / {not_modified:>6} / {other:>6}")
    print("\nratios")
    if "reader" in res:
        ratio = res["reader"]["seconds"] / a["seconds"]
        print(f"  reader (c) / ours (a), wall:  {ratio:5.2f}x faster   target >= 2x: {'met' if ratio >= 2 else 'NOT met'}")
        print(f"  CPU time, reader / ours:      {res['reader']['cpu'] / a['cpu']:5.2f}x")
    share = b["seconds"] / a["seconds"]
    second_304 = served["second"][1]
    pct304 = 100 * second_304 / max(1, sum(served["second"]))
    print(f"  second (b) / first (a):       {100 * share:5.1f}%          target < 10%: {'met' if share < 0.1 else 'NOT met'}")
    print(f"  304 answers in (b), server:   {pct304:5.1f}%          target >= 99%: {'met' if pct304 >= 99 else 'NOT met'}"
          f"  (ours counted {b['counts'].get('not modified', 0)})")
    lib_cpu = libs["feedparser_s"] + min(libs["soup_s"], libs["lean_soup_s"]) + libs["markdownify_s"]
    floor = lib_cpu / cpus
    print(f"\nthe libraries alone (CPU s on one CPU, timed on {libs['sampled_feeds']} feeds, scaled to all):")
    print(f"  feedparser.parse, every feed:               {libs['feedparser_s']:7.1f}")
    print(f"  Beautiful Soup tree (html.parser) per body: {libs['soup_s']:7.1f}   (what markdownify converts)")
    print(f"  the same tree as html_to_markdown builds it: {libs['lean_soup_s']:6.1f}   (bs4's short path for plain tags)")
    print(f"  markdownify, converting those trees:        {libs['markdownify_s']:7.1f}")
    print(f"  our html_to_markdown, whole:                {libs['html_to_markdown_s']:7.1f}   "
          "(its own tree building, clean-up, links, then markdownify)")
    print(f"  feedparser + the cheaper tree + markdownify: {lib_cpu:6.1f}   = {floor:.1f} s over {cpus} CPUs, "
          "the floor for (a)")
    print(f"  (a) took {a['seconds']:.1f} s = {a['seconds'] / floor:4.2f}x that floor; it used {a['cpu']:.1f} CPU s, "
          f"{100 * lib_cpu / a['cpu']:.0f}% of it in those libraries")
    print(f"  (a) kept {a['cpu'] / a['seconds']:.2f} of {cpus} CPUs busy on average")
    if "reader" in res:
        c = res["reader"]
        print(f"  reader used {c['cpu']:.1f} CPU s on {c['cpu'] / c['seconds']:.2f} CPUs; for (a) to take half its "
              f"{c['seconds']:.1f} s, ours may use at most {c['seconds'] / 2 * cpus:.0f} CPU s "
              f"with every CPU busy all the time")


if __name__ == "__main__":
    main()
