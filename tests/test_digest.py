"""The digest stage: golden output, ranking, escaping and templates."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import pytest

from pipeline.cluster import cluster_step
from pipeline.config import load_config
from pipeline.digest import TITLE_MAX, build_digest, digest_step, digest_title, short_title, write_atomic
from pipeline.ingest import ingest_paths
from pipeline.models import StoredItem
from pipeline.render import md_escape, render_markdown, template_environment
from pipeline.store import Store
from pipeline.tag import tag_step

from .conftest import ROOT, write_config

NOW = datetime(2026, 4, 13, 6, 0, tzinfo=timezone.utc)
GOLDEN = ROOT / "tests" / "golden" / "daily-2026-04-13.md"


def _run_all(tmp_path: Path, extra: str = "") -> tuple[Path, object]:
    config = load_config(write_config(tmp_path, extra))
    with Store(config.store.path) as store:
        store.sync_sources(config.sources)
        ingest_paths(store, config, config.ingest.paths, NOW)
        tag_step(store, config, NOW)
        cluster_step(store, config, NOW)
        result = digest_step(store, config, NOW)
    return Path(result.paths[0]), config


def test_digest_matches_golden_file(tmp_path: Path, update_goldens: bool):
    path, _ = _run_all(tmp_path)
    text = path.read_text(encoding="utf-8")
    if update_goldens:
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8"), "run pytest --update-goldens after an intended change"


def test_golden_digest_shape():
    """The committed golden digest itself has the Data Points shape."""
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# Data Points: ") and lines[0].count("; ") == 2
    assert len(lines[0]) - 2 <= TITLE_MAX
    assert lines[1].startswith("*Daily digest, Monday 13 April 2026. ") and lines[1].endswith(".*")
    for i, line in enumerate(lines):
        if line.startswith("#"):  # a blank line before every heading (unless it follows one), none after it
            assert i == 0 or lines[i - 1] == "" or lines[i - 1].startswith("## "), (i, line)
            assert lines[i + 1] != "", (i, line)
    stories = [i for i, line in enumerate(lines) if line.startswith("### ")]
    assert len(stories) >= 20
    for i in stories:
        summary = lines[i + 1]
        assert "a tier-" in summary and " source." in summary
        assert 1 <= summary.count(". ") + 1 <= 4  # one to three sentences, then the kind/source line
        assert lines[i + 2] == ""
        # the source line names the source once more, without repeating its tier and kind
        assert lines[i + 3].startswith("- Source: ") and "(tier " not in lines[i + 3]


def test_user_templates_override_the_builtin(tmp_path: Path):
    templates = tmp_path / "my-templates"
    templates.mkdir()
    (templates / "digest.md.j2").write_text("{{ digest.title }}\n{% for s in digest.sections %}{{ s.label }}\n{% endfor %}")
    path, _ = _run_all(tmp_path, "")
    config_text = (tmp_path / "config.toml").read_text().replace('templates = ""', f'templates = "{templates}"')
    (tmp_path / "config.toml").write_text(config_text)
    config = load_config(tmp_path / "config.toml")
    with Store(config.store.path) as store:
        digest_step(store, config, NOW)
    text = path.read_text()
    assert text.startswith("Data Points: ")
    assert "Cybersecurity\n" in text and "### " not in text


def test_missing_template_variable_fails_loudly(tmp_path: Path):
    (tmp_path / "digest.md.j2").write_text("{{ digest.no_such_field }}")
    env = template_environment(tmp_path)
    view = build_digest([_item("a", "Some title")], {}, (), period="daily", now=NOW, cfg=_cfg(tmp_path))
    with pytest.raises(jinja2.UndefinedError):
        render_markdown(view, env)


def _cfg(tmp_path: Path):
    return load_config(write_config(tmp_path)).digest


def _item(item_id: str, title: str, *, tier: int = 3, source: str = "src", event: str | None = None,
          topics: tuple[str, ...] = (), when: datetime = NOW, kind: str = "news") -> StoredItem:
    return StoredItem(
        id=item_id, source_id=source, source_name=source.title(), tier=tier, url=f"https://{source}.example/{item_id}",
        title=title, author=None, published=when, first_seen=when, body="A sentence that is long enough to be a summary.",
        content_hash=item_id, kind=kind, topics=topics, event_id=event,
    )


def test_ranking_prefers_stories_from_several_sources_then_tier(tmp_path: Path):
    cfg = replace(_cfg(tmp_path), title_stories=2)
    single_t1 = _item("a", "Lab announces a thing", tier=1, source="lab")
    shared = [_item("b", "Story everyone covers", source="wire", event="ev-1"),
              _item("c", "Same story elsewhere", source="blog", tier=2, event="ev-1")]
    lone_t3 = _item("d", "Minor item", source="misc")
    view = build_digest([single_t1, *shared, lone_t3], {"ev-1": shared}, (), period="daily", now=NOW, cfg=cfg)
    stories = [s for sec in view.sections for s in sec.stories]
    assert [s.key for s in sorted(stories, key=lambda s: -s.score)] == ["ev-1", "a", "d"]
    # the headline of an event is its lowest-tier item
    assert next(s for s in stories if s.key == "ev-1").title == "Same story elsewhere"
    assert view.title == "Data Points: Same story elsewhere; Lab announces a thing"
    assert view.item_ids == ("a", "b", "c", "d")


def test_rank_weights_and_topic_weights_reorder_the_stories(tmp_path: Path):
    from pipeline.config import RankConfig
    from pipeline.models import TopicRule

    cfg = _cfg(tmp_path)
    topics = (TopicRule("policy", "Policy", any=("x",)), TopicRule("compute", "Compute", any=("x",)))
    old_t1 = _item("a", "Old primary policy story", tier=1, source="lab", topics=("policy",),
                   when=NOW.replace(day=7))
    fresh_t3 = _item("b", "Fresh compute story", tier=3, source="wire", topics=("compute",))

    def order(rank: RankConfig, rules=topics) -> list[str]:
        view = build_digest([old_t1, fresh_t3], {}, rules, period="daily", now=NOW, cfg=cfg, rank=rank)
        return [s.key for s in sorted((s for sec in view.sections for s in sec.stories), key=lambda s: -s.score)]

    assert order(RankConfig()) == ["a", "b"]  # tier 1 outweighs a few days of age
    assert order(RankConfig(tier=0.2, recency=3.0)) == ["b", "a"]  # freshness weighs more
    heavy_compute = (topics[0], replace(topics[1], weight=5.0))
    assert order(RankConfig(), heavy_compute) == ["b", "a"]  # a topic's weight multiplies its stories' scores


def test_roundups_are_not_title_stories(tmp_path: Path):
    cfg = _cfg(tmp_path)
    roundup = _item("r", "Weekly roundup: ten things", tier=1, kind="digest")
    news = _item("n", "A single story")
    view = build_digest([roundup, news], {}, (), period="daily", now=NOW, cfg=cfg)
    assert view.title == "Data Points: A single story"


def test_max_items_caps_the_digest_and_leaves_the_rest(tmp_path: Path):
    cfg = replace(_cfg(tmp_path), max_items=2)
    items = [_item(str(n), f"Story {n}", when=NOW.replace(hour=n)) for n in range(1, 5)]
    view = build_digest(items, {}, (), period="daily", now=NOW, cfg=cfg)
    assert view.story_count == 2 and len(view.item_ids) == 2


def test_markdown_special_characters_in_titles_do_not_break_the_layout():
    assert md_escape("Why [brackets] *stars* and _under_ <b>tags</b> | pipes") == (
        r"Why \[brackets\] \*stars\* and \_under\_ \<b\>tags\</b\> \| pipes"
    )
    assert md_escape("# not a heading") == r"\# not a heading"
    assert md_escape("line one\nline two") == "line one line two"


def test_text_that_would_start_a_list_or_a_rule_is_escaped_without_touching_its_number():
    assert md_escape("1. Introducing X") == r"1\. Introducing X"
    assert md_escape("12) Twelve things") == r"12\) Twelve things"
    assert md_escape("- a dash") == r"\- a dash" and md_escape("+ a plus") == r"\+ a plus"
    assert md_escape("---") == r"\---" and md_escape("===") == r"\==="
    for ordinary in ("1.5 billion parameters", "2026 in review", "-5 degrees", "#hashtag", "A. B. Smith"):
        assert md_escape(ordinary) == ordinary
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").render(md_escape("1. Introducing X takes a List<String>"))
    assert html == "<p>1. Introducing X takes a List&lt;String&gt;</p>\n"  # a paragraph, not a list


def test_titles_are_cut_at_a_word_boundary_and_the_digest_title_stays_short():
    assert short_title("Short title.") == "Short title"
    cut = short_title("word " * 30)
    assert cut.endswith("word…") and len(cut) <= 60 and "  " not in cut
    assert short_title("Alpha beta: gamma delta epsilon", 14) == "Alpha beta…"  # no dangling colon
    long = [
        "NIS-2026-004: Remote code execution via crafted adapter manifests in Nomad Inference Server",
        "Anthropic keeps Claude Mythos Preview under wraps, publishes 244-page model card and launches Glasswing",
        "Satellite images suggest about 40% of U.S. AI data-centre projects are running behind schedule",
    ]
    title = digest_title("Data Points", long)
    assert len(title) <= TITLE_MAX and title.startswith("Data Points: NIS-2026-004: Remote code execution")
    parts = title.removeprefix("Data Points: ").split("; ")
    assert len(parts) == 3
    for part, full in zip(parts, long):
        assert part.endswith("…") and full.startswith(part[:-1]) and full[len(part) - 1] == " "
    assert digest_title("Weekly Notes", ["One", "Two"]) == "Weekly Notes: One; Two"


def test_the_title_prefix_is_the_site_title(tmp_path: Path):
    cfg = replace(_cfg(tmp_path), site_title="Morning Brief")
    view = build_digest([_item("a", "A single story")], {}, (), period="daily", now=NOW, cfg=cfg)
    assert view.title == "Morning Brief: A single story"


def test_write_atomic_replaces_and_leaves_no_temp_files(tmp_path: Path):
    target = tmp_path / "out" / "digest.md"
    assert write_atomic(target, "one\n") is True
    assert write_atomic(target, "one\n") is False  # same bytes: untouched
    assert write_atomic(target, "two\n") is True
    assert target.read_text() == "two\n"
    assert [p.name for p in target.parent.iterdir()] == ["digest.md"]
