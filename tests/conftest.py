from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
CORPUS = ROOT.parent / "shared" / "corpus"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", help="Rewrite tests/golden/ from the current output.")


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))


def write_config(tmp_path: Path, extra: str = "", *, paths: list[Path] | None = None) -> Path:
    """A copy of the project's config.toml that keeps its state in tmp_path."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    paths = paths if paths is not None else [SEEDS / "feeds", SEEDS / "emails", SEEDS / "articles"]
    text = text.replace('path = "pipeline.db"', f'path = "{tmp_path / "pipeline.db"}"')
    text = text.replace('output_dir = "digests"', f'output_dir = "{tmp_path / "digests"}"')
    text = text.replace('opml = "seeds/subscriptions.opml"', f'opml = "{SEEDS / "subscriptions.opml"}"')
    text = text.replace(
        'paths = ["seeds/feeds", "seeds/emails", "seeds/articles"]',
        "paths = [" + ", ".join(f'"{p}"' for p in paths) + "]",
    )
    assert str(tmp_path) in text, "config.toml no longer has the keys this fixture rewrites"
    path = tmp_path / "config.toml"
    path.write_text(text + "\n" + extra, encoding="utf-8")
    return path


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(*args: str | Path, cwd: Path | None = None, config: Path | None = None) -> CliResult:
    cmd = [sys.executable, "-m", "pipeline"]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += [str(a) for a in args]
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_CONFIG"}
    proc = subprocess.run(cmd, cwd=cwd or ROOT, capture_output=True, text=True, env=env, timeout=300)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli():
    return run_cli
