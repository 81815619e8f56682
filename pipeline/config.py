"""Turn config.toml into typed, validated settings.

Every problem is reported with its dotted key (``digest.max_itmes: unknown
key``), all of them at once, so a user fixes the file in one pass.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .models import KINDS, Source, TopicRule
from .roundup import SPLIT_MODES
from .terms import term_error

DEFAULT_USER_AGENT = "pipeline/0.1 (+https://pipeline.example/; feed reader and digest builder)"


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
    connect_timeout: float = 10.0  # seconds to establish a connection
    total_timeout: float = 120.0  # seconds one download may take in all
    workers: int = 12  # downloads at once, over all hosts
    per_host: int = 2  # downloads at once from one host
    min_interval: float = 30.0  # minutes between two scheduled fetches of a feed
    max_backoff: float = 24.0  # hours: longest wait after repeated failures
    parse_workers: int = 0  # processes that read fetched feeds; 0: one per CPU


@dataclass(frozen=True)
class TagConfig:
    title_weight: float
    body_weight: float
    min_score: float
    relative: float = 0.5  # a topic needs at least this share of the item's best topic score


@dataclass(frozen=True)
class ClusterConfig:
    window_days: float
    threshold: float
    related_threshold: float
    max_related: int


@dataclass(frozen=True)
class EmailConfig:
    """Where and how digests are mailed ([digest.email]); no recipients means no e-mail."""

    to: tuple[str, ...] = ()
    sender: str = "pipeline@localhost"
    host: str = "localhost"
    port: int = 587
    security: str = "starttls"  # starttls, ssl or none
    username: str = ""
    password_env: str = "PIPELINE_SMTP_PASSWORD"
    ca_file: Path | None = None
    timeout: float = 30.0
    on_digest: bool = False


EMAIL_SECURITY = ("starttls", "ssl", "none")
IMAP_SECURITY = ("ssl", "starttls", "none")


@dataclass(frozen=True)
class ImapConfig:
    """One IMAP mailbox folder that `pipeline fetch` reads newsletters from ([[imap]])."""

    id: str
    host: str
    user: str
    port: int = 993  # default 993 with security "ssl", else 143
    security: str = "ssl"  # ssl, starttls or none
    folder: str = "INBOX"
    password_env: str = "PIPELINE_IMAP_PASSWORD"  # environment variable holding the password
    ca_file: Path | None = None  # extra CA certificate (PEM) to trust
    timeout: float = 30.0
    mark_seen: bool = False  # set \Seen on each message once stored; off: flags never change
    delete: bool = False  # delete each message from the server once stored
PERIOD_NAMES = ("daily", "weekly")


@dataclass(frozen=True)
class DigestConfig:
    output_dir: Path
    timezone: str
    title_stories: int
    max_items: int
    templates: Path | None
    site_url: str = ""
    site_title: str = "Data Points"
    cutoff_hour: int = 0
    periods: tuple[str, ...] = ("daily",)
    nothing_new: bool = False
    email: EmailConfig = field(default_factory=lambda: EmailConfig())

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class RankConfig:
    """How digest stories are ordered ([rank]): a story scores
    (tier x tier points + sources x other sources + recency x freshness) x its topic's weight."""

    tier: float = 1.0  # times 3, 2 or 1 points for a tier-1, -2 or -3 headline source
    sources: float = 2.0  # per source beyond the first that reported the story
    recency: float = 1.0  # times freshness: 1 for a story from now, 0 for one recency_days old
    recency_days: float = 7.0


@dataclass(frozen=True)
class ScheduleConfig:
    """The jobs of `pipeline schedule` ([schedule])."""

    interval_minutes: float = 60.0  # fetch, ingest, tag and cluster this often; 0: never
    fetch: bool = True  # whether the interval job downloads feeds
    ingest: bool = True  # whether the interval job reads ingest.paths
    timezone: str = "UTC"  # time zone of the cron times (default: digest.timezone)
    daily: str = "0 7 * * *"  # crontab time of the daily digest; "": none
    weekly: str = "0 7 * * mon"  # crontab time of the weekly digest; "": none
    deliver: bool = False  # deliver each digest after writing it
    misfire_grace: int = 3600  # seconds a late job may still start
    catch_up_days: int = 7  # how far back missed digests are made on start; 0: never
    lock_timeout: float = 600.0  # seconds a command waits for another to finish


@dataclass(frozen=True)
class LogConfig:
    """Where logs go besides stderr ([log])."""

    file: Path | None = None  # rotating log file; None: stderr only
    max_bytes: int = 1_000_000
    backups: int = 5


@dataclass(frozen=True)
class SummarizeConfig:
    """How summaries are made ([summarize]): extractive, or by a chat completions endpoint."""

    llm: bool = False  # ask an OpenAI-compatible endpoint for summaries
    base_url: str = ""  # for example http://localhost:8080/v1; required when llm is true
    model: str = ""  # required when llm is true
    api_key_env: str = "PIPELINE_LLM_API_KEY"  # environment variable holding the API key (unset: none sent)
    max_per_run: int = 50  # at most this many requests in one command run
    timeout: float = 30.0  # seconds to wait for a reply
    max_sentences: int = 2  # sentences the model writes, 1 to 3


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
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig())
    rank: RankConfig = field(default_factory=lambda: RankConfig())
    log: LogConfig = field(default_factory=lambda: LogConfig())
    imap: tuple[ImapConfig, ...] = ()
    summarize: SummarizeConfig = field(default_factory=lambda: SummarizeConfig())


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
    sections = {"store", "ingest", "fetch", "tag", "cluster", "digest", "sources", "topics", "default_tier", "rank",
                "schedule", "log", "summarize", "imap"}
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
    r.unknown(
        t,
        "fetch.",
        {"opml", "on_run", "timeout", "user_agent", "max_bytes", "connect_timeout", "total_timeout", "workers",
         "per_host", "min_interval", "max_backoff", "parse_workers"},
    )
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
        connect_timeout=r.value(t, "fetch.", "connect_timeout", float, 10.0),
        total_timeout=r.value(t, "fetch.", "total_timeout", float, 120.0),
        workers=r.value(t, "fetch.", "workers", int, 12),
        per_host=r.value(t, "fetch.", "per_host", int, 2),
        min_interval=r.value(t, "fetch.", "min_interval", float, 30.0),
        max_backoff=r.value(t, "fetch.", "max_backoff", float, 24.0),
        parse_workers=r.value(t, "fetch.", "parse_workers", int, 0),
    )
    r.check(fetch.timeout > 0, "fetch.timeout", "must be greater than 0")
    r.check(fetch.max_bytes > 0, "fetch.max_bytes", "must be greater than 0")
    r.check(fetch.connect_timeout > 0, "fetch.connect_timeout", "must be greater than 0")
    r.check(fetch.total_timeout > 0, "fetch.total_timeout", "must be greater than 0")
    r.check(1 <= fetch.workers <= 256, "fetch.workers", "must be between 1 and 256")
    r.check(1 <= fetch.per_host <= 64, "fetch.per_host", "must be between 1 and 64")
    r.check(fetch.min_interval >= 0, "fetch.min_interval", "must be 0 or more")
    r.check(fetch.max_backoff > 0, "fetch.max_backoff", "must be greater than 0")
    r.check(fetch.parse_workers >= 0, "fetch.parse_workers", "must be 0 or more")

    # [tag]
    t = r.table(data.get("tag"), "tag")
    r.unknown(t, "tag.", {"title_weight", "body_weight", "min_score", "relative"})
    tag = TagConfig(
        title_weight=r.value(t, "tag.", "title_weight", float, 2.0),
        body_weight=r.value(t, "tag.", "body_weight", float, 1.0),
        min_score=r.value(t, "tag.", "min_score", float, 4.0),
        relative=r.value(t, "tag.", "relative", float, 0.5),
    )
    r.check(0 <= tag.relative <= 1, "tag.relative", "must be between 0 and 1")
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
    r.unknown(
        t,
        "digest.",
        {"output_dir", "timezone", "title_stories", "max_items", "templates", "site_url", "site_title",
         "cutoff_hour", "periods", "nothing_new", "email"},
    )
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
        site_url=r.value(t, "digest.", "site_url", str, ""),
        site_title=r.value(t, "digest.", "site_title", str, "Data Points"),
        cutoff_hour=r.value(t, "digest.", "cutoff_hour", int, 0),
        periods=r.value(t, "digest.", "periods", list, ("daily",)),
        nothing_new=r.value(t, "digest.", "nothing_new", bool, False),
        email=_read_email(r, t.get("email"), resolve),
    )
    r.check(0 <= digest.cutoff_hour <= 23, "digest.cutoff_hour", "must be an hour from 0 to 23")
    for i, name in enumerate(digest.periods):
        r.check(name in PERIOD_NAMES, f"digest.periods[{i}]", f"must be one of {', '.join(PERIOD_NAMES)}")
    r.check(
        not digest.site_url or re.match(r"^https?://[^/\s]+", digest.site_url) is not None,
        "digest.site_url",
        "must be an absolute http(s) URL",
    )
    try:
        ZoneInfo(digest.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        r.problems.append(f"digest.timezone: unknown time zone {digest.timezone!r}")
    r.check(digest.title_stories >= 1, "digest.title_stories", "must be at least 1")
    r.check(digest.max_items >= 1, "digest.max_items", "must be at least 1")

    schedule = _read_schedule(r, data.get("schedule"), digest.timezone)
    t = r.table(data.get("rank"), "rank")
    r.unknown(t, "rank.", {"tier", "sources", "recency", "recency_days"})
    rank = RankConfig(
        tier=r.value(t, "rank.", "tier", float, 1.0),
        sources=r.value(t, "rank.", "sources", float, 2.0),
        recency=r.value(t, "rank.", "recency", float, 1.0),
        recency_days=r.value(t, "rank.", "recency_days", float, 7.0),
    )
    for key in ("tier", "sources", "recency"):
        r.check(getattr(rank, key) >= 0, f"rank.{key}", "must be 0 or more")
    r.check(rank.recency_days > 0, "rank.recency_days", "must be greater than 0")
    log_config = _read_log(r, data.get("log"), resolve)
    summarize = _read_summarize(r, data.get("summarize"))

    default_tier = r.value(data, "", "default_tier", int, 3)
    r.check(default_tier in (1, 2, 3), "default_tier", "must be 1, 2 or 3")

    sources = _read_sources(r, data.get("sources", []), resolve)
    topics = _read_topics(r, data.get("topics", []))
    imap = _read_imap(r, data.get("imap", []), resolve, {s.id for s in sources})

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
        schedule=schedule,
        rank=rank,
        log=log_config,
        summarize=summarize,
        imap=imap,
    )


def _read_email(r: _Reader, value: Any, resolve: Any) -> EmailConfig:
    p = "digest.email."
    t = r.table(value, "digest.email")
    r.unknown(t, p, {"to", "sender", "host", "port", "security", "username", "password_env", "ca_file", "timeout",
                     "on_digest"})
    ca_value = r.value(t, p, "ca_file", str, "")
    ca_file = resolve(ca_value) if ca_value else None
    if ca_file is not None:
        r.check(ca_file.is_file(), f"{p}ca_file", f"no such file: {ca_file}")
    email = EmailConfig(
        to=r.value(t, p, "to", list, ()),
        sender=r.value(t, p, "sender", str, "pipeline@localhost"),
        host=r.value(t, p, "host", str, "localhost"),
        port=r.value(t, p, "port", int, 587),
        security=r.value(t, p, "security", str, "starttls"),
        username=r.value(t, p, "username", str, ""),
        password_env=r.value(t, p, "password_env", str, "PIPELINE_SMTP_PASSWORD"),
        ca_file=ca_file,
        timeout=r.value(t, p, "timeout", float, 30.0),
        on_digest=r.value(t, p, "on_digest", bool, False),
    )
    address = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
    for i, to in enumerate(email.to):
        r.check(bool(address.match(to)), f"{p}to[{i}]", f"not an e-mail address: {to!r}")
    r.check(bool(address.match(email.sender)), f"{p}sender", f"not an e-mail address: {email.sender!r}")
    r.check(email.security in EMAIL_SECURITY, f"{p}security", f"must be one of {', '.join(EMAIL_SECURITY)}")
    r.check(0 < email.port < 65536, f"{p}port", "must be a port number")
    r.check(email.timeout > 0, f"{p}timeout", "must be greater than 0")
    return email


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
        r.unknown(t, p, {"id", "name", "tier", "kind", "url", "site", "match", "split", "min_interval"})
        sid = r.value(t, p, "id", str, "")
        r.check(bool(_SLUG.match(sid)), f"{p}id", "required: lower-case letters, digits and dashes")
        r.check(sid not in seen, f"{p}id", f"duplicate source id {sid!r}")
        seen.add(sid)
        tier = r.value(t, p, "tier", int, 3)
        r.check(tier in (1, 2, 3), f"{p}tier", "must be 1, 2 or 3")
        kind = r.value(t, p, "kind", str, "") or None
        r.check(kind is None or kind in KINDS, f"{p}kind", f"must be one of {', '.join(KINDS)}")
        split = r.value(t, p, "split", str, "auto")
        r.check(split in SPLIT_MODES, f"{p}split", f"must be one of {', '.join(SPLIT_MODES)}")
        min_interval = r.value(t, p, "min_interval", float, None)
        r.check(min_interval is None or min_interval >= 0, f"{p}min_interval", "must be 0 or more")
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
                split=split,
                min_interval=min_interval,
            )
        )
    return tuple(sources)


def _read_topics(r: _Reader, value: Any) -> tuple[TopicRule, ...]:
    topics: list[TopicRule] = []
    seen: set[str] = set()
    for i, t in enumerate(_array_of_tables(r, value, "topics")):
        p = f"topics[{i}]."
        r.unknown(t, p, {"id", "label", "any", "strong", "all", "none", "min_score", "weight"})
        tid = r.value(t, p, "id", str, "")
        r.check(bool(_SLUG.match(tid)), f"{p}id", "required: lower-case letters, digits and dashes")
        r.check(tid not in seen, f"{p}id", f"duplicate topic id {tid!r}")
        seen.add(tid)
        lists = {key: r.value(t, p, key, list, ()) for key in ("any", "strong", "all", "none")}
        r.check(bool(lists["any"] or lists["strong"]), f"{p}any", "required: at least one term in any or strong")
        for key, terms in lists.items():
            for n, term in enumerate(terms):
                for part in term.split("|") if key == "all" else [term]:
                    problem = term_error(part)
                    if problem:
                        r.problems.append(f"{p}{key}[{n}]: {problem}")
        min_score = r.value(t, p, "min_score", float, None)
        r.check(min_score is None or min_score > 0, f"{p}min_score", "must be greater than 0")
        weight = r.value(t, p, "weight", float, 1.0)
        r.check(weight >= 0, f"{p}weight", "must be 0 or more")
        topics.append(
            TopicRule(
                id=tid,
                label=r.value(t, p, "label", str, "") or tid,
                any=lists["any"],
                strong=lists["strong"],
                all=lists["all"],
                none=lists["none"],
                min_score=min_score,
                weight=weight,
            )
        )
    return tuple(topics)


# A crontab field: numbers, names (mon, jan), ranges, lists, steps and *.
_CRON_FIELD = re.compile(r"^[0-9a-z*?/,-]+$")


def _read_schedule(r: _Reader, value: Any, digest_timezone: str) -> ScheduleConfig:
    p = "schedule."
    t = r.table(value, "schedule")
    r.unknown(t, p, {"interval_minutes", "fetch", "ingest", "timezone", "daily", "weekly", "deliver",
                     "misfire_grace", "catch_up_days", "lock_timeout"})
    own_timezone = r.value(t, p, "timezone", str, "")
    s = ScheduleConfig(
        interval_minutes=r.value(t, p, "interval_minutes", float, 60.0),
        fetch=r.value(t, p, "fetch", bool, True),
        ingest=r.value(t, p, "ingest", bool, True),
        timezone=own_timezone or digest_timezone,
        daily=r.value(t, p, "daily", str, "0 7 * * *").strip(),
        weekly=r.value(t, p, "weekly", str, "0 7 * * mon").strip(),
        deliver=r.value(t, p, "deliver", bool, False),
        misfire_grace=r.value(t, p, "misfire_grace", int, 3600),
        catch_up_days=r.value(t, p, "catch_up_days", int, 7),
        lock_timeout=r.value(t, p, "lock_timeout", float, 600.0),
    )
    r.check(s.interval_minutes >= 0, f"{p}interval_minutes", "must be 0 (never) or more")
    try:
        ZoneInfo(s.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        if own_timezone:  # a bad digest.timezone is reported under its own key
            r.problems.append(f"{p}timezone: unknown time zone {s.timezone!r}")
    for key in ("daily", "weekly"):
        fields = getattr(s, key).lower().split()
        r.check(
            not fields or (len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields)),
            f"{p}{key}",
            "must be a crontab time with 5 fields (minute hour day month weekday), "
            'for example "0 7 * * *", or "" for none',
        )
    r.check(s.misfire_grace >= 1, f"{p}misfire_grace", "must be at least 1 second")
    r.check(s.catch_up_days >= 0, f"{p}catch_up_days", "must be 0 (never) or more")
    r.check(s.lock_timeout >= 0, f"{p}lock_timeout", "must be 0 or more")
    return s


def _read_log(r: _Reader, value: Any, resolve: Any) -> LogConfig:
    p = "log."
    t = r.table(value, "log")
    r.unknown(t, p, {"file", "max_bytes", "backups"})
    file_value = r.value(t, p, "file", str, "")
    log_config = LogConfig(
        file=resolve(file_value) if file_value else None,
        max_bytes=r.value(t, p, "max_bytes", int, 1_000_000),
        backups=r.value(t, p, "backups", int, 5),
    )
    r.check(log_config.max_bytes >= 1024, f"{p}max_bytes", "must be at least 1024")
    r.check(log_config.backups >= 1, f"{p}backups", "must be at least 1")
    return log_config


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _read_summarize(r: _Reader, value: Any) -> SummarizeConfig:
    p = "summarize."
    t = r.table(value, "summarize")
    r.unknown(t, p, {"llm", "base_url", "model", "api_key_env", "max_per_run", "timeout", "max_sentences"})
    s = SummarizeConfig(
        llm=r.value(t, p, "llm", bool, False),
        base_url=r.value(t, p, "base_url", str, "").strip().rstrip("/"),
        model=r.value(t, p, "model", str, "").strip(),
        api_key_env=r.value(t, p, "api_key_env", str, "PIPELINE_LLM_API_KEY"),
        max_per_run=r.value(t, p, "max_per_run", int, 50),
        timeout=r.value(t, p, "timeout", float, 30.0),
        max_sentences=r.value(t, p, "max_sentences", int, 2),
    )
    if s.llm:
        r.check(bool(s.base_url), f"{p}base_url", "required when summarize.llm is true")
        r.check(bool(s.model), f"{p}model", "required when summarize.llm is true")
    r.check(
        not s.base_url or re.match(r"^https?://[^/\s]+", s.base_url) is not None,
        f"{p}base_url",
        "must be an absolute http(s) URL, for example http://localhost:8080/v1",
    )
    r.check(bool(_ENV_NAME.match(s.api_key_env)), f"{p}api_key_env", "must be the name of an environment variable")
    r.check(s.max_per_run >= 0, f"{p}max_per_run", "must be 0 or more")
    r.check(s.timeout > 0, f"{p}timeout", "must be greater than 0")
    r.check(1 <= s.max_sentences <= 3, f"{p}max_sentences", "must be 1, 2 or 3")
    return s


def _read_imap(r: _Reader, value: Any, resolve: Any, source_ids: set[str]) -> tuple[ImapConfig, ...]:
    accounts: list[ImapConfig] = []
    seen: set[str] = set()
    for i, t in enumerate(_array_of_tables(r, value, "imap")):
        p = f"imap[{i}]."
        r.unknown(t, p, {"id", "host", "port", "security", "folder", "user", "password_env", "ca_file", "timeout",
                         "mark_seen", "delete", "password"})
        if "password" in t:
            r.problems.append(
                f"{p}password: not allowed in the config file; put the password in an environment variable "
                f"and name it with {p}password_env (default PIPELINE_IMAP_PASSWORD)"
            )
        aid = r.value(t, p, "id", str, "")
        r.check(bool(_SLUG.match(aid)), f"{p}id", "required: lower-case letters, digits and dashes")
        r.check(aid not in seen, f"{p}id", f"duplicate imap id {aid!r}")
        r.check(aid not in source_ids, f"{p}id", f"{aid!r} is also a [[sources]] id; `pipeline fetch --source` "
                                               "needs them apart")
        seen.add(aid)
        security = r.value(t, p, "security", str, "ssl")
        r.check(security in IMAP_SECURITY, f"{p}security", f"must be one of {', '.join(IMAP_SECURITY)}")
        ca_value = r.value(t, p, "ca_file", str, "")
        ca_file = resolve(ca_value) if ca_value else None
        if ca_file is not None:
            r.check(ca_file.is_file(), f"{p}ca_file", f"no such file: {ca_file}")
        account = ImapConfig(
            id=aid,
            host=r.value(t, p, "host", str, "").strip(),
            user=r.value(t, p, "user", str, ""),
            port=r.value(t, p, "port", int, 993 if security == "ssl" else 143),
            security=security,
            folder=r.value(t, p, "folder", str, "INBOX"),
            password_env=r.value(t, p, "password_env", str, "PIPELINE_IMAP_PASSWORD"),
            ca_file=ca_file,
            timeout=r.value(t, p, "timeout", float, 30.0),
            mark_seen=r.value(t, p, "mark_seen", bool, False),
            delete=r.value(t, p, "delete", bool, False),
        )
        r.check(bool(account.host), f"{p}host", "required: the IMAP server's name or address")
        r.check(bool(account.user), f"{p}user", "required: the login name")
        r.check(0 < account.port < 65536, f"{p}port", "must be a port number")
        r.check(bool(account.folder.strip()), f"{p}folder", "must not be empty")
        r.check(bool(_ENV_NAME.match(account.password_env)), f"{p}password_env",
                "must be the name of an environment variable")
        r.check(account.timeout > 0, f"{p}timeout", "must be greater than 0")
        accounts.append(account)
    return tuple(accounts)
