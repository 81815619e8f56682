"""Shared set-up of the digest tests: the seeds through every stage into a temporary folder."""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from pipeline.cluster import cluster_step
from pipeline.config import Config, load_config
from pipeline.ingest import ingest_paths
from pipeline.store import Store
from pipeline.tag import tag_step

from .conftest import write_config

NOW = datetime(2026, 4, 13, 6, 0, tzinfo=timezone.utc)
SITE_URL = "https://digests.example.org/news/"


def _set_keys(text: str, header: str, values: dict[str, str]) -> str:
    """Set keys (TOML literals) inside one table of the config text, replacing the shipped lines."""
    start = text.index(header) + len(header)
    end = text.find("\n[", start)
    end = len(text) if end == -1 else end
    body = text[start:end]
    for key, value in values.items():
        line = re.compile(rf"^{re.escape(key)} = .*$", re.M)
        if line.search(body):
            body = line.sub(lambda _m: f"{key} = {value}", body, count=1)
        else:
            body = body.rstrip("\n") + f"\n{key} = {value}\n"
    return text[:start] + body + text[end:]


def digest_settings(tmp_path: Path, digest: dict[str, str] | None = None, email: dict[str, str] | None = None) -> Path:
    """The project's config in tmp_path, with some [digest] and [digest.email] keys set."""
    path = write_config(tmp_path)
    text = path.read_text(encoding="utf-8")
    text = _set_keys(text, "\n[digest]\n", digest or {})
    text = _set_keys(text, "\n[digest.email]\n", email or {})
    path.write_text(text, encoding="utf-8")
    return path


_SEEDED: dict[datetime, Path] = {}


def seeded_store(config: Config, now: datetime = NOW) -> Store:
    """A store holding the seeds, ingested, tagged and clustered at ``now``, at config.store.path.

    The stages run once per ``now`` for the whole session; each test gets a copy of that database.
    """
    template = _SEEDED.get(now)
    if template is None:
        folder = Path(tempfile.mkdtemp(prefix="pipeline-seeded-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        template = folder / "pipeline.db"
        with Store(template) as store:
            store.sync_sources(config.sources)
            ingest_paths(store, config, config.ingest.paths, now)
            tag_step(store, config, now)
            cluster_step(store, config, now)
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        _SEEDED[now] = template
    config.store.path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, config.store.path)
    store = Store(config.store.path)
    store.sync_sources(config.sources)
    return store


def load(path: Path) -> Config:
    return load_config(path)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under folder: its bytes and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
