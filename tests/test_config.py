from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_config

from .conftest import ROOT, write_config


def test_shipped_config_is_valid_and_has_the_default_topics():
    config = load_config(ROOT / "config.toml")
    assert [t.id for t in config.topics] == [
        "open-weight", "cybersecurity", "frontier-models", "policy", "compute", "business", "safety",
    ]
    assert all(t.any or t.strong for t in config.topics)
    assert config.store.path == ROOT / "pipeline.db"
    assert config.fetch.on_run is False  # the default run never waits on the network
    assert {s.tier for s in config.sources} == {1, 2, 3}


def test_every_problem_is_reported_with_its_dotted_key(tmp_path: Path):
    path = write_config(
        tmp_path,
        "",
    )
    text = path.read_text()
    text = text.replace("max_items = 40", "max_itmes = 40")
    text = text.replace("timeout = 20.0", 'timeout = "soon"')
    text = text.replace("title_stories = 3", "title_stories = 0")
    text = text.replace('timezone = "UTC"', 'timezone = "Mars/Olympus"')
    text += '\n[[topics]]\nid = "Bad Id"\nany = []\nstrong = ["/[unclosed/"]\n'
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert "digest.max_itmes: unknown key" in problems
    assert "fetch.timeout: expected a number, got a string" in problems
    assert "digest.title_stories: must be at least 1" in problems
    assert "digest.timezone: unknown time zone 'Mars/Olympus'" in problems
    assert any(p.startswith("topics[7].id: required") for p in problems)
    assert any(p.startswith("topics[7].strong[0]: not a valid regular expression") for p in problems)
    assert len(problems) == 6


def test_missing_files_named_by_the_config_are_problems(tmp_path: Path):
    path = write_config(tmp_path, paths=[tmp_path / "nowhere"])
    text = path.read_text().replace('templates = ""', 'templates = "no-such-templates"')
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"ingest.paths[0]: no such file or folder: {tmp_path / 'nowhere'}",
        f"digest.templates: no such folder: {tmp_path / 'no-such-templates'}",
    ]


def test_missing_config_file(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml")
    assert info.value.problems == [f"config file not found: {tmp_path / 'absent.toml'}"]


def test_invalid_toml_names_the_line(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text("[digest]\nmax_items = = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "line 2" in info.value.problems[0]


def test_wrong_section_type(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text('digest = "daily"\nsources = 3\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        "digest: expected a table, got a string",
        "sources: expected an array of tables ([[sources]]), got an integer",
    ]


def test_cli_reports_bad_config_as_error_lines_without_traceback(tmp_path: Path, cli):
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("max_items = 40", "max_itmes = 40").replace("min_score = 4.0", "min_score = true"))
    result = cli("run", config=path)
    assert result.code == 1
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert lines == [
        f"Error: {path}: tag.min_score: expected a number, got a boolean",
        f"Error: {path}: digest.max_itmes: unknown key",
    ]
    assert result.out == ""
    assert not (tmp_path / "pipeline.db").exists()


def test_cli_missing_config_file(tmp_path: Path, cli):
    result = cli("status", config=tmp_path / "nope.toml")
    assert result.code == 1
    assert result.err.strip() == f"Error: {tmp_path / 'nope.toml'}: config file not found: {tmp_path / 'nope.toml'}"
