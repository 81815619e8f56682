"""Turn config.toml into typed, validated settings.

Every problem is reported with its dotted key (``digest.max_itmes: unknown
key``), all of them at once, so a user fixes the file in one pass.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .models import KINDS, Source, TopicRule

DEFAULT_USER_AGENT = "pipeline/0.1 (feed reader and digest builder)"


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` holds one line per fault."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class StoreConfig:
    path: Path


@dataclass(frozen=True)
class IngestConfig:
    paths: tuple[Path, ...]
    on_run: bool


@dataclass(frozen=True)
class FetchConfig:
    opml: Path | None
    on_run: bool
    timeout: float
    user_agent: str
    max_bytes: int


@dataclass(frozen=True)
class TagConfig:
    title_weight: float
    body_weight: float
    min_score: float


@dataclass(frozen=True)
class ClusterConfig:
    window_days: float
    threshold: float
    related_threshold: float
    max_related: int


@dataclass(frozen=True)
class DigestConfig:
    output_dir: Path
    timezone: str
    title_stories: int
    max_items: int
    templates: Path | None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Config:
    path: Path
    store: StoreConfig
    ingest: IngestConfig
    fetch: FetchConfig
    tag: TagConfig
    cluster: ClusterConfig
    digest: DigestConfig
    default_tier: int
    sources: tuple[Source, ...]
    topics: tuple[TopicRule, ...]


# --- a small schema walker -------------------------------------------------

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list of strings"}


def _type_name(value: Any) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


class _Reader:
    """Collects problems while reading values out of the parsed TOML."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def table(self, data: Any, key: str) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.problems.append(f"{key}: expected a table, got {_type_name(data)}")
            return {}
        return data

    def unknown(self, data: dict[str, Any], prefix: str, known: set[str]) -> None:
        for key in data:
            if key not in known:
                self.problems.append(f"{prefix}{key}: unknown key")

    def value(self, data: dict[str, Any], prefix: str, key: str, kind: type, default: Any) -> Any:
        if key not in data:
            return default
        value = data[key]
        dotted = f"{prefix}{key}"
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                self.problems.append(f"{dotted}: expected a list of strings, got {_type_name(value)}")
                return default
            return tuple(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problems.append(f"{dotted}: expected {_TYPE_NAMES[kind]}, got {_type_name(value)}")
            return default
        return value

    def check(self, ok: bool, dotted: str, message: str) -> None:
        if not ok:
            self.problems.append(f"{dotted}: {message}")


_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"config file not found: {path}"]) from None
    except OSError as exc:
        raise ConfigError([f"cannot read config file {path}: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    return parse_config(data, base=path.resolve().parent, path=path)


def parse_config(data: dict[str, Any], *, base: Path, path: Path) -> Config:
    r = _Reader()
    sections = {"store", "ingest", "fetch", "tag", "cluster", "digest", "sources", "topics", "default_tier"}
    r.unknown(data, "", sections)

    def resolve(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p

    # [store]
    t = r.table(data.get("store"), "store")
    r.unknown(t, "store.", {"path"})
    store = StoreConfig(path=resolve(r.value(t, "store.", "path", str, "pipeline.db")))

    # [ingest]
    t = r.table(data.get("ingest"), "ingest")
    r.unknown(t, "ingest.", {"paths", "on_run"})
    paths = tuple(resolve(p) for p in r.value(t, "ingest.", "paths", list, ()))
    for i, p in enumerate(paths):
        r.check(p.exists(), f"ingest.paths[{i}]", f"no such file or folder: {p}")
    ingest = IngestConfig(paths=paths, on_run=r.value(t, "ingest.", "on_run", bool, True))

    # [fetch]
    t = r.table(data.get("fetch"), "fetch")
    r.unknown(t, "fetch.", {"opml", "on_run", "timeout", "user_agent", "max_bytes"})
    opml_value = r.value(t, "fetch.", "opml", str, "")
    opml = resolve(opml_value) if opml_value else None
    if opml is not None:
        r.check(opml.is_file(), "fetch.opml", f"no such file: {opml}")
    fetch = FetchConfig(
        opml=opml,
        on_run=r.value(t, "fetch.", "on_run", bool, False),
        timeout=r.value(t, "fetch.", "timeout", float, 20.0),
        user_agent=r.value(t, "fetch.", "user_agent", str, DEFAULT_USER_AGENT),
        max_bytes=r.value(t, "fetch.", "max_bytes", int, 10_000_000),
    )
    r.check(fetch.timeout > 0, "fetch.timeout", "must be greater than 0")
    r.check(fetch.max_bytes > 0, "fetch.max_bytes", "must be greater than 0")

    # [tag]
    t = r.table(data.get("tag"), "tag")
    r.unknown(t, "tag.", {"title_weight", "body_weight", "min_score"})
    tag = TagConfig(
        title_weight=r.value(t, "tag.", "title_weight", float, 3.0),
        body_weight=r.value(t, "tag.", "body_weight", float, 1.0),
        min_score=r.value(t, "tag.", "min_score", float, 2.0),
    )
    r.check(tag.min_score > 0, "tag.min_score", "must be greater than 0")

    # [cluster]
    t = r.table(data.get("cluster"), "cluster")
    r.unknown(t, "cluster.", {"window_days", "threshold", "related_threshold", "max_related"})
    cluster = ClusterConfig(
        window_days=r.value(t, "cluster.", "window_days", float, 4.0),
        threshold=r.value(t, "cluster.", "threshold", float, 0.22),
        related_threshold=r.value(t, "cluster.", "related_threshold", float, 0.1),
        max_related=r.value(t, "cluster.", "max_related", int, 8),
    )
    r.check(cluster.window_days > 0, "cluster.window_days", "must be greater than 0")
    r.check(0 < cluster.threshold <= 1, "cluster.threshold", "must be between 0 and 1")
    r.check(
        0 < cluster.related_threshold <= cluster.threshold,
        "cluster.related_threshold",
        "must be greater than 0 and at most cluster.threshold",
    )

    # [digest]
    t = r.table(data.get("digest"), "digest")
    r.unknown(t, "digest.", {"output_dir", "timezone", "title_stories", "max_items", "templates"})
    templates_value = r.value(t, "digest.", "templates", str, "")
    templates = resolve(templates_value) if templates_value else None
    if templates is not None:
        r.check(templates.is_dir(), "digest.templates", f"no such folder: {templates}")
    digest = DigestConfig(
        output_dir=resolve(r.value(t, "digest.", "output_dir", str, "digests")),
        timezone=r.value(t, "digest.", "timezone", str, "UTC"),
        title_stories=r.value(t, "digest.", "title_stories", int, 3),
        max_items=r.value(t, "digest.", "max_items", int, 40),
        templates=templates,
    )
    try:
        ZoneInfo(digest.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        r.problems.append(f"digest.timezone: unknown time zone {digest.timezone!r}")
    r.check(digest.title_stories >= 1, "digest.title_stories", "must be at least 1")
    r.check(digest.max_items >= 1, "digest.max_items", "must be at least 1")

    default_tier = r.value(data, "", "default_tier", int, 3)
    r.check(default_tier in (1, 2, 3), "default_tier", "must be 1, 2 or 3")

    sources = _read_sources(r, data.get("sources", []), resolve)
    topics = _read_topics(r, data.get("topics", []))

    if r.problems:
        raise ConfigError(r.problems)
    return Config(
        path=path,
        store=store,
        ingest=ingest,
        fetch=fetch,
        tag=tag,
        cluster=cluster,
        digest=digest,
        default_tier=default_tier,
        sources=sources,
        topics=topics,
    )


def _array_of_tables(r: _Reader, value: Any, key: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        r.problems.append(f"{key}: expected an array of tables ([[{key}]]), got {_type_name(value)}")
        return []
    return value


def _read_sources(r: _Reader, value: Any, resolve: Any) -> tuple[Source, ...]:
    sources: list[Source] = []
    seen: set[str] = set()
    for i, t in enumerate(_array_of_tables(r, value, "sources")):
        p = f"sources[{i}]."
        r.unknown(t, p, {"id", "name", "tier", "kind", "url", "site", "match"})
        sid = r.value(t, p, "id", str, "")
        r.check(bool(_SLUG.match(sid)), f"{p}id", "required: lower-case letters, digits and dashes")
        r.check(sid not in seen, f"{p}id", f"duplicate source id {sid!r}")
        seen.add(sid)
        tier = r.value(t, p, "tier", int, 3)
        r.check(tier in (1, 2, 3), f"{p}tier", "must be 1, 2 or 3")
        kind = r.value(t, p, "kind", str, "") or None
        r.check(kind is None or kind in KINDS, f"{p}kind", f"must be one of {', '.join(KINDS)}")
        sources.append(
            Source(
                id=sid,
                name=r.value(t, p, "name", str, "") or sid,
                tier=tier,
                kind=kind,
                url=r.value(t, p, "url", str, "") or None,
                site=r.value(t, p, "site", str, "") or None,
                match=tuple(m.lower() for m in r.value(t, p, "match", list, ())),
                origin="config",
            )
        )
    return tuple(sources)


def _read_topics(r: _Reader, value: Any) -> tuple[TopicRule, ...]:
    topics: list[TopicRule] = []
    seen: set[str] = set()
    for i, t in enumerate(_array_of_tables(r, value, "topics")):
        p = f"topics[{i}]."
        r.unknown(t, p, {"id", "label", "phrases", "exclude"})
        tid = r.value(t, p, "id", str, "")
        r.check(bool(_SLUG.match(tid)), f"{p}id", "required: lower-case letters, digits and dashes")
        r.check(tid not in seen, f"{p}id", f"duplicate topic id {tid!r}")
        seen.add(tid)
        phrases = r.value(t, p, "phrases", list, ())
        r.check(bool(phrases), f"{p}phrases", "required: at least one phrase")
        topics.append(
            TopicRule(
                id=tid,
                label=r.value(t, p, "label", str, "") or tid,
                phrases=phrases,
                exclude=r.value(t, p, "exclude", list, ()),
            )
        )
    return tuple(topics)
