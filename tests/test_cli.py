from __future__ import annotations

import re

import pytest

from pipeline.cli import cli as click_group

from .conftest import ROOT

COMMANDS = sorted(click_group.commands)


def test_there_is_a_command_per_stage():
    assert {"run", "fetch", "ingest", "normalize", "tag", "cluster", "digest", "status", "items"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, cli):
    result = cli(command, "--help")
    assert result.code == 0, result.err
    assert result.out.startswith(f"Usage: python -m pipeline {command}")
    doc = click_group.commands[command].help
    assert doc and doc.split("\n")[0].strip()[:30] in " ".join(result.out.split())


def test_every_command_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for command in COMMANDS:
        assert re.search(rf"`pipeline {command}\b", readme), f"README does not document `pipeline {command}`"


def test_every_global_option_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for param in click_group.params:
        for opt in param.opts:
            if opt.startswith("--") and opt not in ("--help", "--version"):
                assert f"`{opt}" in readme, opt


def test_every_config_key_is_in_the_readme_and_the_shipped_config():
    import tomllib

    readme = (ROOT / "README.md").read_text()
    shipped = tomllib.loads((ROOT / "config.toml").read_text())
    for section, table in shipped.items():
        if isinstance(table, dict):
            for key in table:
                assert f"`{section}.{key}`" in readme, f"{section}.{key}"


def test_version_and_unknown_command(cli):
    assert cli("--version").code == 0
    bad = cli("frobnicate")
    assert bad.code == 2 and "No such command" in bad.err and "Traceback" not in bad.err


def test_bad_option_values_are_clean_errors(tmp_path, cli, config_path):
    result = cli("items", "--since", "last tuesday-ish", config=config_path)
    assert result.code == 1
    assert result.err.strip() == "Error: --since: cannot read 'last tuesday-ish' as a date and time"
    result = cli("--now", "soon", "run", config=config_path)
    assert result.code == 1 and result.err.strip().startswith("Error: --now:")
