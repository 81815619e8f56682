"""`pipeline sources list|add|remove|import|export`, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from pipeline.sources import discover_feeds, read_opml, write_opml
from pipeline.store import Store

from .conftest import run_cli
from .test_fetch import FeedServer, Reply, atom, make_config, server, small_feed  # noqa: F401

PAGE = b"""<!doctype html><html><head><title>Alpha Lab</title>
<link rel="stylesheet" href="/style.css">
<link rel="alternate" type="application/atom+xml" title="Alpha news" href="/news/atom.xml">
<link rel="alternate" type="application/rss+xml" href="/rss.xml">
</head><body><p>Welcome</p></body></html>"""


def _list_rows(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip()}


def test_add_list_fetch_export_import_and_remove(server: FeedServer, tmp_path: Path):
    server.routes["/feed.xml"] = Reply(small_feed("alpha"), headers={"Content-Type": "application/rss+xml"})
    server.routes["/lab/"] = Reply(PAGE, headers={"Content-Type": "text/html; charset=utf-8"})
    server.routes["/news/atom.xml"] = Reply(atom("lab", ("1", "Lab entry", "Text.")))
    server.routes["/plain/"] = Reply(b"<html><head><title>x</title></head><body>no feed</body></html>")
    (tmp_path / "one").mkdir()
    cfg, _ = make_config(tmp_path / "one", {"configured": server.url("/configured.xml")})
    server.routes["/configured.xml"] = Reply(small_feed("configured"))

    added = run_cli("sources", "add", server.url("/feed.xml"), "--name", "Alpha Feed", "--tier", "1",
                    "--category", "Policy", "--kind", "news", config=cfg)
    assert added.code == 0, added.err
    assert added.out.strip() == f"added alpha-feed: {server.url('/feed.xml')}"

    page = run_cli("sources", "add", server.url("/lab/"), "--tier", "2", "--min-interval", "90", config=cfg)
    assert page.code == 0, page.err
    assert page.out.strip() == "added lab: " + server.url("/news/atom.xml")  # the first feed the page lists, by its title

    none = run_cli("sources", "add", server.url("/plain/"), config=cfg)
    assert none.code == 1
    assert none.err.startswith("Error: ") and "announces none" in none.err

    again = run_cli("sources", "add", server.url("/feed.xml"), config=cfg)
    assert again.code == 1 and "already followed as source 'alpha-feed'" in again.err

    listed = run_cli("sources", "list", config=cfg)
    assert listed.code == 0, listed.err
    rows = _list_rows(listed.out)
    assert rows["alpha-feed"][1:3] == ["1", "cli"]
    assert rows["lab"][1:3] == ["2", "cli"]
    assert rows["configured"][2] == "config"

    fetched = run_cli("fetch", config=cfg)
    assert fetched.code == 0, fetched.err
    assert fetched.out.startswith("fetch: fetched 3, not modified 0, failed 0, new items 5")
    status = run_cli("status", config=cfg)
    assert status.code == 0, status.err
    feed_lines = {line.split()[0]: line.split() for line in status.out.split("Feeds (3):")[1].splitlines()[2:5]}
    assert feed_lines["alpha-feed"][1] == "200" and feed_lines["alpha-feed"][-1] == "2"  # status ... items
    assert feed_lines["lab"][-1] == "1"
    with Store(tmp_path / "one" / "pipeline.db") as store:
        assert store.fetch_state("lab")["min_interval"] == 90

    exported = run_cli("sources", "export", config=cfg)
    assert exported.code == 0, exported.err
    opml = exported.out.encode()
    by_url = {s.url: s for s in read_opml(opml)}
    alpha = by_url[server.url("/feed.xml")]
    assert (alpha.name, alpha.tier, alpha.kind, alpha.category) == ("Alpha Feed", 1, "news", "Policy")
    assert set(by_url) == {server.url("/feed.xml"), server.url("/news/atom.xml"), server.url("/configured.xml")}
    assert by_url[server.url("/news/atom.xml")].min_interval == 90  # its own interval goes along

    # into a second store: import, and export again gives the same OPML
    (tmp_path / "two").mkdir()
    opml_file = tmp_path / "two" / "subs.opml"
    opml_file.write_bytes(opml)
    cfg2, _ = make_config(tmp_path / "two", {})
    imported = run_cli("sources", "import", opml_file, config=cfg2)
    assert imported.code == 0, imported.err
    assert imported.out.strip() == "imported 3 source(s); 0 already followed"
    assert run_cli("sources", "import", opml_file, config=cfg2).out.strip() == "imported 0 source(s); 3 already followed"
    assert run_cli("sources", "export", config=cfg2).out.encode() == opml
    with Store(tmp_path / "two" / "pipeline.db") as store:
        assert store.fetch_state("lab")["min_interval"] == 90

    removed = run_cli("sources", "remove", "alpha-feed", config=cfg)
    assert removed.code == 0, removed.err
    assert removed.out.strip() == "removed alpha-feed (its stored items stay)"
    with Store(tmp_path / "one" / "pipeline.db") as store:
        [alpha_row] = [s for s in store.sources() if s.id == "alpha-feed"]
        assert alpha_row.url is None and alpha_row.origin == "auto"  # kept for its items, no longer fetched
        assert len(store.items(source="alpha-feed")) == 2
    refused = run_cli("sources", "remove", "configured", config=cfg)
    assert refused.code == 1 and "defined in config.toml" in refused.err


def test_opml_written_is_read_back_to_the_same_sources():
    sources = read_opml(
        b"""<opml version="2.0"><body>
        <outline text="Security"><outline text="Sec Wire" xmlUrl="https://sec.example/feed" tier="1" kind="news"
          htmlUrl="https://sec.example/"/></outline>
        <outline text="Loose" xmlUrl="https://loose.example/rss" min_interval="90"/>
        <outline text="Odd" xmlUrl="https://odd.example/rss" min_interval="soon"/>
        </body></opml>"""
    )
    again = read_opml(write_opml(sources))
    assert sorted(again, key=lambda s: s.id) == sorted(sources, key=lambda s: s.id)
    assert {s.id: s.category for s in again} == {"sec-wire": "Security", "loose": None, "odd": None}
    assert {s.id: s.min_interval for s in again} == {"sec-wire": None, "loose": 90.0, "odd": None}
    assert write_opml(again) == write_opml(sources)


def test_feed_discovery_reads_link_alternate_in_page_order():
    assert discover_feeds(PAGE, "https://alpha.example/lab/") == [
        ("https://alpha.example/news/atom.xml", "Alpha news"),
        ("https://alpha.example/rss.xml", None),
    ]
    assert discover_feeds(b"<html><link rel=alternate hreflang=fr href=/fr/></html>", "https://a.example/") == []
