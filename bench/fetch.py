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
  and, alone, the mandated libraries our pipeline spends its time in:
  feedparser on every feed body and markdownify (our html_to_markdown) on a
  sample of entry bodies, scaled to all entries and divided by the CPUs.

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


def serve(n_feeds: int, port_queue: Any, stop: Any) -> None:
    bodies = {f"/feed/{i}.xml": feed_xml(i) for i in range(n_feeds)}
    etags = {p: '"' + hashlib.sha1(b).hexdigest()[:16] + '"' for p, b in bodies.items()}
    modified = "Wed, 01 Apr 2026 00:00:00 GMT"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = bodies.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.headers.get("If-None-Match") == etags[self.path]:
                self.send_response(304)
                self.send_header("ETag", etags[self.path])
                self.end_headers()
                return
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
    errors = sum(1 for f in reader.get_feeds() if f.last_exception)
    reader.close()
    return {"seconds": seconds, "items": entries, "errors": errors, "peak_mb": peak_mb(), "cpu": cpu,
            "load": os.getloadavg()[0]}


def phase_libraries(n_feeds: int, sample_feeds: int) -> dict[str, Any]:
    """feedparser on every body, and markdownify on the entries of a sample of feeds (one CPU)."""
    import feedparser

    from pipeline.normalize import html_to_markdown

    bodies = [feed_xml(i) for i in range(n_feeds)]
    started = time.perf_counter()
    parsed = [
        feedparser.parse(b, sanitize_html=False, resolve_relative_uris=False)
        for b in bodies[:sample_feeds]
    ]
    feedparser_s = (time.perf_counter() - started) * n_feeds / sample_feeds
    htmls = [e.description for p in parsed for e in p.entries]
    started = time.perf_counter()
    for h in htmls:
        html_to_markdown(h)
    markdownify_s = (time.perf_counter() - started) * (n_feeds * ENTRIES) / len(htmls)
    out = {"feedparser_s": feedparser_s, "markdownify_s": markdownify_s, "sampled_feeds": sample_feeds}
    try:  # the same conversion with lxml building the tree, when lxml is installed
        import lxml  # noqa: F401

        from pipeline import normalize

        plain = [html_to_markdown(h) for h in htmls]
        real = normalize.BeautifulSoup
        normalize.BeautifulSoup = lambda markup, _parser, **kw: real(markup, "lxml", **kw)  # type: ignore
        started = time.perf_counter()
        with_lxml = [html_to_markdown(h) for h in htmls]
        out["lxml_s"] = (time.perf_counter() - started) * (n_feeds * ENTRIES) / len(htmls)
        out["lxml_same"] = sum(x == y for x, y in zip(plain, with_lxml, strict=True)) / len(htmls)
        normalize.BeautifulSoup = real  # type: ignore[misc]
    except ImportError:
        pass
    return out


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
    server = ctx.Process(target=serve, args=(args.feeds, port_queue, stop), daemon=True)
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
            for name, extra in phases:
                print(f"... {name}", file=sys.stderr, flush=True)
                res[name] = _run_phase([*extra, "--workdir", str(work)])
    finally:
        stop.set()
        server.join(timeout=5)
        if server.is_alive():
            server.terminate()

    a, b, libs = res["first"], res["second"], res["libraries"]
    second_304 = b["counts"].get("not modified", 0)
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
    print("(CPU s: this process and its workers; load: 1-minute load average at the end, other work on "
          "the machine slows the wall-clock figures)")
    print(f"\nfirst-fetch counts: {a['counts']}  problems: {a['problems']}")
    print(f"second-fetch counts: {b['counts']}  problems: {b['problems']}")
    print("\nratios")
    if "reader" in res:
        ratio = res["reader"]["seconds"] / a["seconds"]
        print(f"  reader (c) / ours (a):        {ratio:5.2f}x faster   target >= 2x: {'met' if ratio >= 2 else 'NOT met'}")
        print(f"  CPU time, reader / ours:      {res['reader']['cpu'] / a['cpu']:5.2f}x")
    share = b["seconds"] / a["seconds"]
    pct304 = 100 * second_304 / args.feeds
    print(f"  second (b) / first (a):       {100 * share:5.1f}%          target < 10%: {'met' if share < 0.1 else 'NOT met'}")
    print(f"  304 answers in (b):           {pct304:5.1f}%          target >= 99%: {'met' if pct304 >= 99 else 'NOT met'}")
    floor = (libs["feedparser_s"] + libs["markdownify_s"]) / cpus
    print(f"\nmandated libraries alone (one CPU, sampled on {libs['sampled_feeds']} feeds, scaled to all):")
    print(f"  feedparser.parse, every feed:       {libs['feedparser_s']:7.1f} s")
    print(f"  markdownify (html_to_markdown):     {libs['markdownify_s']:7.1f} s")
    print(f"  their sum spread over {cpus} CPUs:        {floor:7.1f} s  = the floor for (a)")
    if "lxml_s" in libs:
        print(f"  markdownify with lxml building the tree: {libs['lxml_s']:7.1f} s "
              f"({libs['lxml_s'] / libs['markdownify_s']:.2f}x the html.parser time; same Markdown for "
              f"{100 * libs['lxml_same']:.0f}% of the bodies)")
    print(f"  (a) is {a['seconds'] / floor:4.2f}x that floor "
          f"({100 * floor / a['seconds']:.0f}% of (a) is those two libraries at full use of every CPU)")
    lib_cpu = libs["feedparser_s"] + libs["markdownify_s"]
    print(f"  (a) used {a['cpu']:.1f} CPU s: {a['cpu'] / lib_cpu:4.2f}x the two libraries alone "
          f"({100 * (a['cpu'] - lib_cpu) / a['cpu']:.0f}% of its CPU is everything else: HTTP, SQLite, the rest of "
          "reading and cleaning)")
    print(f"  (a) kept {a['cpu'] / a['seconds']:.2f} of {cpus} CPUs busy on average; "
          f"with every CPU free it would take about {a['cpu'] / cpus:.0f} s")


if __name__ == "__main__":
    main()
