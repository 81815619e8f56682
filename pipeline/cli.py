"""The command line. The only module that knows about click.

Results go to stdout; logs and problems go to stderr. Errors become one
``Error: ...`` line each. Exit codes: 0 done, 1 error, 2 usage error,
3 done but some inputs were skipped or failed.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from .config import Config, ConfigError, load_config
from .interrupt import install_signal_handlers, reset as reset_stop, stop_requested
from .lock import LockTimeout, LockWaitStopped, StageLock, close_dead_runs, lock_path
from .logs import FORMATS as LOG_FORMATS, add_log_file, set_stderr_level, setup_logging
from .models import KINDS, PERIODS, StepResult
from .store import Store
from .when import parse_when


class _Stage:
    """A module imported when a command first uses it: `pipeline search` or `items` need not load
    the feed, HTML and rendering libraries (most of a second to import), nor any command but
    `schedule` and `status` APScheduler."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name, __package__), attr)


cluster_mod = _Stage(".cluster")
deliver_mod = _Stage(".deliver")
digest_mod = _Stage(".digest")
fetch_mod = _Stage(".fetch")
imap_mod = _Stage(".imap")
ingest_mod = _Stage(".ingest")
schedule_mod = _Stage(".schedule")
search_mod = _Stage(".search")
sources_mod = _Stage(".sources")
summarizer_mod = _Stage(".summarizer")
tag_mod = _Stage(".tag")

EXIT_ERROR = 1
EXIT_PARTIAL = 3

log = logging.getLogger("pipeline")


class PipelineError(click.ClickException):
    """A domain error shown to the user as ``Error: ...``."""

    exit_code = EXIT_ERROR

    def show(self, file=None) -> None:  # type: ignore[no-untyped-def]
        for line in self.message.splitlines():
            click.echo(f"Error: {line}", err=True)


@dataclass
class State:
    config_path: Path
    now_text: str | None
    log_format: str = "text"
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load_config(self.config_path)
            except ConfigError as exc:
                raise PipelineError("\n".join(f"{self.config_path}: {p}" for p in exc.problems)) from None
            log_cfg = self._config.log
            if log_cfg.file is not None:
                add_log_file(log_cfg.file, max_bytes=log_cfg.max_bytes, backups=log_cfg.backups, fmt=self.log_format)
        return self._config

    @property
    def now(self) -> datetime:
        if self.now_text:
            when = parse_when(self.now_text)
            if when is None:
                raise PipelineError(f"--now: cannot read {self.now_text!r} as a date and time")
            return when
        return datetime.now(timezone.utc).replace(microsecond=0)

    def open_store(self) -> Store:
        store = Store(self.config.store.path)
        store.sync_sources(self.config.sources)
        return store


pass_state = click.make_pass_decorator(State)


def _setup_logging(verbose: int, quiet: bool, log_format: str = "text") -> None:
    level = logging.ERROR if quiet else {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    setup_logging(level, log_format)


def _summary(result: StepResult) -> str:
    if result.stage == "fetch":
        rest = ", ".join(
            f"{v} {k}" for k, v in sorted(result.counts.items())
            if v and k not in ("fetched", "not modified", "failed", "new")
        )
        return f"fetch: {fetch_mod.summary_line(result)}" + (f" ({rest})" if rest else "")
    if result.stage == imap_mod.STAGE:
        rest = ", ".join(f"{v} {k}" for k, v in sorted(result.counts.items()) if v and k not in imap_mod.SUMMARY_KEYS)
        return f"imap: {imap_mod.summary_line(result)}" + (f" ({rest})" if rest else "")
    counts = ", ".join(f"{v} {k}" for k, v in sorted(result.counts.items()) if v) or "nothing to do"
    return f"{result.stage}: {counts}"


def _execute(state: State, command: str, work: Callable[[Store, Config, datetime], list[StepResult]]) -> None:
    """Run a state-changing command: record it, print its results, exit with the right code."""
    config = state.config
    now = state.now
    reset_stop()
    install_signal_handlers()  # SIGTERM/SIGINT: finish the current input, record "interrupted", exit 0
    lock = StageLock(lock_path(config.store.path), command=command, timeout=config.schedule.lock_timeout)
    try:
        lock.acquire()  # one state-changing command at a time, manual or scheduled
    except LockTimeout as exc:
        raise PipelineError(str(exc)) from None
    except LockWaitStopped as exc:
        click.echo(f"{command}: {exc}; nothing was done", err=True)
        return
    with lock, state.open_store() as store:
        close_dead_runs(store, datetime.now(timezone.utc))
        run_id = store.start_run(command, now)
        results: list[StepResult] = []
        try:
            results = work(store, config, now)
        except KeyboardInterrupt:
            store.finish_run(run_id, now=datetime.now(timezone.utc), status="interrupted", counts={}, problems=[])
            raise
        except Exception as exc:
            store.finish_run(
                run_id, now=datetime.now(timezone.utc), status="failed", counts={}, problems=[str(exc)]
            )
            raise
        problems = [str(p) for r in results for p in r.problems]
        counts = {f"{r.stage}.{k}": v for r in results for k, v in r.counts.items()}
        interrupted = stop_requested()
        store.finish_run(
            run_id,
            now=datetime.now(timezone.utc),
            status="interrupted" if interrupted else "partial" if problems else "ok",
            counts=counts,
            problems=problems,
        )
    for r in results:
        click.echo(_summary(r))
        for path in r.paths:
            click.echo(path)
    if interrupted:
        click.echo(f"{command}: stopped on request; run it again to finish the rest", err=True)
        return
    if problems:
        click.echo(f"{len(problems)} input(s) skipped; see the messages above", err=True)
        sys.exit(EXIT_PARTIAL)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="config.toml",
    show_default=True,
    envvar="PIPELINE_CONFIG",
    help="Configuration file (also $PIPELINE_CONFIG).",
)
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option(
    "--now",
    "now_text",
    metavar="TIME",
    help="Act as if the current time were TIME (ISO 8601), for reproducible runs.",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    envvar="PIPELINE_LOG_FORMAT",
    help="Log lines as text or as one JSON object per line (also $PIPELINE_LOG_FORMAT).",
)
@click.version_option(package_name="pipeline")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, verbose: int, quiet: bool, now_text: str | None,
        log_format: str) -> None:
    """Read feeds, newsletters and pages; tag and cluster them; write digests."""
    _setup_logging(verbose, quiet, log_format)
    ctx.obj = State(config_path=config_path, now_text=now_text, log_format=log_format)


@cli.command()
@pass_state
def run(state: State) -> None:
    """Run every stage in order: fetch (if enabled), ingest, tag, cluster, digest.

    With the default config this reads the bundled samples in seeds/ and
    writes digests/daily/YYYY-MM-DD.md, without using the network.
    """

    def work(store: Store, config: Config, now: datetime) -> list[StepResult]:
        results = []
        if config.fetch.on_run:
            results.extend(_fetch_feeds_and_mailboxes(store, config, now))
        if config.ingest.on_run and not stop_requested():
            results.append(ingest_mod.ingest_paths(store, config, config.ingest.paths, now))
        if stop_requested():  # the remaining stages wait for the next run
            return results
        results.append(tag_mod.tag_step(store, config, now))
        results.append(cluster_mod.cluster_step(store, config, now))
        with summarizer_mod.Summarizer.from_config(config.summarize, store, now=now) as summarizer:  # one budget per run
            for period in config.digest.periods:
                results.append(digest_mod.digest_step(store, config, now, period=period, summarizer=summarizer))
        return results

    _execute(state, "run", work)


def _fetch_with_progress(store: Store, config: Config, now: datetime, *, only: set[str] | None = None,
                         force: bool = False) -> StepResult:
    """The fetch step, with a progress bar on stderr when stderr is a terminal."""
    if not sys.stderr.isatty():
        return fetch_mod.fetch_sources(store, config, now, only=only, force=force)
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    # While the bar shows, log lines are written above it (through tqdm) instead of through it.
    with tqdm(total=0, file=sys.stderr, unit="feed", desc="fetch", leave=False) as bar, \
            logging_redirect_tqdm(loggers=[logging.getLogger("pipeline")], tqdm_class=tqdm):

        def on_total(n: int) -> None:
            bar.total = n
            bar.refresh()

        return fetch_mod.fetch_sources(store, config, now, only=only, force=force, progress=bar.update,
                                       on_total=on_total)


def _fetch_feeds_and_mailboxes(store: Store, config: Config, now: datetime, *, only: set[str] | None = None,
                               force: bool = False) -> list[StepResult]:
    """The feeds, then the [[imap]] mailboxes; ``only`` may name sources and IMAP accounts."""
    imap_ids = {a.id for a in config.imap}
    results = []
    if only is None or only - imap_ids:
        results.append(_fetch_with_progress(store, config, now, only=only - imap_ids if only else None, force=force))
    if any(only is None or a.id in only for a in config.imap) and not stop_requested():
        results.append(imap_mod.fetch_mailboxes(store, config, now, only=only))
    return results


@cli.command()
@click.option("--source", "only", multiple=True, metavar="ID",
              help="Fetch only this source (id or URL) or IMAP account (id); repeatable.")
@click.option("--force", is_flag=True,
              help="Fetch every feed now, ignoring minimum intervals, Cache-Control, Retry-After and backoff "
                   "(conditional headers are still sent).")
@pass_state
def fetch(state: State, only: tuple[str, ...], force: bool) -> None:
    """Download the feeds that are due (config [[sources]], fetch.opml and `pipeline sources add`),
    then read the new messages of the IMAP mailboxes (config [[imap]]).

    Prints one line for the feeds: fetched, not modified, failed, new items; and one for the
    mailboxes: messages, new items.
    """
    _execute(
        state,
        "fetch",
        lambda store, config, now: _fetch_feeds_and_mailboxes(store, config, now, only=set(only) or None,
                                                              force=force),
    )


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_state
def ingest(state: State, paths: tuple[Path, ...]) -> None:
    """Read local files or folders: feeds (RSS, Atom, JSON Feed), e-mails (.eml, mbox, Maildir),
    HTML pages, Markdown and text articles."""
    _execute(state, "ingest", lambda store, config, now: [ingest_mod.ingest_paths(store, config, paths, now)])


@cli.command()
@pass_state
def normalize(state: State) -> None:
    """Read every stored raw document again and update its items (after an upgrade or a config change)."""
    _execute(state, "normalize", lambda store, config, now: [ingest_mod.renormalize(store, config, now)])


@cli.command()
@click.option("--retag", is_flag=True, help="Tag every stored item again, not only new and changed ones.")
@pass_state
def tag(state: State, retag: bool) -> None:
    """Label items by topic (rules in config [[topics]]) and by kind of piece."""
    _execute(state, "tag", lambda store, config, now: [tag_mod.tag_step(store, config, now, retag=retag)])


@cli.command()
@pass_state
def cluster(state: State) -> None:
    """Group items that report the same story into events, and link related events."""
    _execute(state, "cluster", lambda store, config, now: [cluster_mod.cluster_step(store, config, now)])


def _time_option(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    when = parse_when(value)
    if when is None:
        raise PipelineError(f"{name}: cannot read {value!r} as a date and time")
    return when


@cli.command()
@click.option("--period", type=click.Choice(PERIODS), default="daily", show_default=True,
              help="Which digest to write.")
@click.option("--date", "date_text", metavar="DATE",
              help="Write the digest of this past date (YYYY-MM-DD; for weekly also YYYY-Www) instead of the current one.")
@click.option("--last", is_flag=True,
              help="Write the digest of the newest day (or week) that has ended, instead of the current one.")
@click.option("--since", metavar="TIME", help="One-off digest of items first seen from TIME (ISO 8601); not recorded.")
@click.option("--until", metavar="TIME", help="End of a one-off digest (default: now).")
@click.option("--deliver/--no-deliver", default=None,
              help="Then mail every due digest to digest.email.to: those of days and weeks that have ended, "
                   "not yet sent (default: digest.email.on_digest).")
@pass_state
def digest(state: State, period: str, date_text: str | None, last: bool, since: str | None, until: str | None,
           deliver: bool | None) -> None:
    """Write the digest of items first seen since the previous digest of the same period.

    By default the digest of the current day (or week) so far. Writes Markdown,
    HTML, plain text and an e-mail (.eml) of the digest, then the event and
    topic pages, the index and the Atom feeds around it. A digest already
    mailed is left as it is.
    """
    since_dt = _time_option(since, "--since")
    until_dt = _time_option(until, "--until")
    if sum((bool(date_text), last, bool(since or until))) > 1:
        raise click.UsageError("--date, --last and --since/--until cannot be combined")
    if date_text:
        try:
            digest_mod.parse_period_key(period, date_text)
        except ValueError:
            raise PipelineError(f"--date: cannot read {date_text!r} as a date (YYYY-MM-DD or YYYY-Www)") from None
    if until_dt is not None and since_dt is None:
        raise click.UsageError("--until needs --since")
    _execute(
        state,
        "digest",
        lambda store, config, now: [
            digest_mod.digest_step(store, config, now, period=period, date=date_text, last=last, since=since_dt,
                                   until=until_dt, deliver=deliver)
        ],
    )


@cli.command()
@click.option("--period", type=click.Choice(PERIODS), default=None,
              help="Only digests of this period (default: every period).")
@click.option("--date", "date_text", metavar="DATE",
              help="Only the digest of this date (YYYY-MM-DD, or YYYY-Www for a weekly one), even if older than "
                   "schedule.catch_up_days.")
@click.option("--resend-unknown", is_flag=True,
              help="Also send deliveries that an interrupted run may or may not have sent.")
@pass_state
def deliver(state: State, period: str | None, date_text: str | None, resend_unknown: bool) -> None:
    """Mail digests to digest.email.to over SMTP, never twice to the same address.

    By default every due digest: one whose day or week has ended within the
    last schedule.catch_up_days days and that some address has not received
    yet (never tried, or failed). A digest whose day or week is not over is
    not mailed; the first delivery after it ends mails it. The password is
    read from the environment variable named by digest.email.password_env.
    """
    ids: list[str] | None = None
    if date_text:
        which = period or ("weekly" if "-W" in date_text else "daily")
        try:
            key = digest_mod.parse_period_key(which, date_text)
        except ValueError:
            raise PipelineError(f"--date: cannot read {date_text!r} as a date (YYYY-MM-DD or YYYY-Www)") from None
        ids = [f"{which}:{key}"]

    def work(store: Store, config: Config, now: datetime) -> list[StepResult]:
        if ids is not None and store.digest(ids[0]) is None:
            raise PipelineError(f"no {ids[0].replace(':', ' digest ')}; write it first with pipeline digest")
        return [deliver_mod.deliver_digests(store, config, now, digest_ids=ids, period=period,
                                            resend_unknown=resend_unknown)]

    _execute(state, "deliver", work)


@cli.command()
@pass_state
def status(state: State) -> None:
    """Show counts per source and per stage, and the last runs."""
    with state.open_store() as store:
        sources = store.source_counts()
        stages = store.stage_counts()
        runs = store.last_runs(5)
    click.echo(f"Database: {state.config.store.path}")
    click.echo(f"\nSources ({len(sources)}):")
    click.echo(f"  {'TIER':<5}{'SOURCE':<34}{'RAW':>5}{'ITEMS':>7}{'TAGGED':>8}{'IN EVENTS':>11}  LAST FETCH")
    for s in sources:
        fetched = f"{s['last_fetched']} ({s['last_status']})" if s["last_fetched"] else "-"
        click.echo(
            f"  {s['tier']:<5}{s['name'][:33]:<34}{s['raw']:>5}{s['items']:>7}{s['tagged']:>8}"
            f"{s['clustered']:>11}  {fetched}"
        )
    with state.open_store() as store:
        feeds = store.source_fetch_report()
    if feeds:
        click.echo(f"\nFeeds ({len(feeds)}):")
        click.echo(f"  {'SOURCE':<28}{'STATUS':<8}{'LAST SUCCESS':<27}{'ERRORS':>7}  {'NEXT ATTEMPT':<27}{'ITEMS':>6}")
        for f in feeds:
            nxt = f"disabled: {f['disabled']}" if f["disabled"] else (f["next_attempt"] or "now")
            click.echo(
                f"  {f['id'][:27]:<28}{f['last_status'] or '-':<8}{f['last_success'] or '-':<27}"
                f"{f['consecutive_errors']:>7}  {nxt:<27}{f['items']:>6}"
            )
            if f["last_error"]:
                click.echo(f"      {f['last_error']}")
    if state.config.imap:
        with state.open_store() as store:
            folders = {(s.account, s.folder): s for s in store.imap_states()}
        click.echo(f"\nMailboxes ({len(state.config.imap)}):")
        click.echo(f"  {'ACCOUNT':<20}{'FOLDER':<20}{'LAST UID':>9}  {'LAST CHECKED':<27}LAST ERROR")
        for account in state.config.imap:
            s = folders.get((account.id, account.folder))
            checked = s.last_checked.isoformat() if s and s.last_checked else "never"
            click.echo(
                f"  {account.id[:19]:<20}{account.folder[:19]:<20}{s.last_uid if s else 0:>9}  {checked:<27}"
                f"{(s.last_error if s else None) or '-'}"
            )
    click.echo("\nStages:")
    for name, count in stages.items():
        click.echo(f"  {name:<22}{count:>7}")
    click.echo("\nLast runs:")
    if not runs:
        click.echo("  none yet")
    for r in runs:
        problems = f", {len(r['problems'])} problem(s)" if r["problems"] else ""
        click.echo(f"  #{r['id']:<4}{r['command']:<15}{r['started']}  {r['status']}{problems}")
    with state.open_store() as store:
        lines = schedule_mod.status_lines(store, state.config, state.now)
    click.echo("\nSchedule:")
    for line in lines:
        click.echo(line)


@cli.command()
@click.option("--topic", help="Only items with this topic id.")
@click.option("--source", help="Only items from this source (id or name).")
@click.option("--since", metavar="TIME", help="Only items published (or first seen) at or after TIME (ISO 8601).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many items.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_state
def items(state: State, topic: str | None, source: str | None, since: str | None, limit: int | None,
          as_json: bool) -> None:
    """List stored items, newest first."""
    since_dt = parse_when(since) if since else None
    if since and since_dt is None:
        raise PipelineError(f"--since: cannot read {since!r} as a date and time")
    with state.open_store() as store:
        rows = store.items(topic=topic, source=source, since=since_dt, limit=limit)
    for i in rows:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "id": i.id,
                        "source": i.source_id,
                        "source_name": i.source_name,
                        "url": i.url,
                        "title": i.title,
                        "author": i.author,
                        "published": i.published.isoformat() if i.published else None,
                        "first_seen": i.first_seen.isoformat(),
                        "kind": i.kind,
                        "tier": i.tier,
                        "topics": list(i.topics),
                        "event": i.event_id,
                        "parent": i.parent_id,
                    },
                    ensure_ascii=False,
                )
            )
        else:
            date = i.when.strftime("%Y-%m-%d")
            topics = ",".join(i.topics) or "-"
            click.echo(f"{i.id}  {date}  t{i.tier}  {i.source_name[:22]:<22}  {topics[:30]:<30}  {i.title[:80]}")


@cli.command()
@click.argument("item_id", metavar="ITEM")
@pass_state
def explain(state: State, item_id: str) -> None:
    """Show why ITEM (an item id, or its URL) has its topics, kind and event.

    The topics are worked out again from the rules in config.toml, so after
    changing them this shows what `pipeline tag --retag` would give.
    """
    config = state.config
    with state.open_store() as store:
        found = store.items(ids=[item_id]) or store.items_by_url(item_id)
        if not found:
            raise PipelineError(f"{item_id}: no such item (give an id from `pipeline items` or a URL)")
        item = found[0]
        stored = {t["topic_id"]: t for t in store.item_topic_terms(item.id)}
    click.echo(f"{item.id}  {item.title}")
    click.echo(f"  source: {item.source_name} (tier {item.tier})   url: {item.url or '-'}")
    kind, why = tag_mod.explain_kind(item)
    click.echo(f"  kind: {kind} ({why})")
    click.echo(f"  event: {item.event_id or 'not clustered yet'}")
    from_rules = [t for t, row in stored.items() if row["score"] > 0]
    from_event = [t for t, row in stored.items() if row["score"] == 0]
    click.echo(f"  stored topics: {', '.join(from_rules) or 'none'}"
               + (f"; from its event: {', '.join(from_event)} (most of the event's other items have them)"
                  if from_event else ""))
    click.echo("\nTopics by the rules in config.toml:")
    topics = tag_mod.compile_topics(config.topics)
    text = tag_mod.ItemText(item.title, item.body)
    for e in tag_mod.explain_topics(text, topics, config.tag):
        mark = "yes" if e.given else "no "
        click.echo(f"  {mark} {e.topic_id:<16} score {e.score:g} of {e.min_score:g} needed")
        for t in e.terms:
            click.echo(f"        + {t.score:g}  {t.term!r} ({t.where})")
        for g in e.missing_groups:
            click.echo(f"        none of the required terms found: {g}")
        for v in e.vetoed_by:
            click.echo(f"        vetoed by {v!r} in the title")
        if e.below_best:
            click.echo(f"        left out: below {config.tag.relative:g} of the item's best topic score")
    if kind == "digest":
        parts = tag_mod.roundup_topics(item.title, item.body, topics, config.tag, whole=text)
        if parts:
            click.echo("\nA roundup also has the topics of each story it lists, tagged on its own:")
        for name, matches in parts:
            given = ", ".join(f"{m.topic_id} ({m.score:g}: {', '.join(m.terms)})" for m in matches)
            click.echo(f"  {name[:70]!r}: {given or 'no topic'}")


@cli.command()
@click.argument("query", nargs=-1, required=True)
@click.option("--raw", is_flag=True,
              help="Pass QUERY to SQLite FTS5 as written: AND, OR, NOT, NEAR(...), title: and body: filters.")
@click.option("--topic", help="Only items with this topic id.")
@click.option("--source", help="Only items from this source (id or name).")
@click.option("--since", metavar="TIME", help="Only items published (or first seen) at or after TIME (ISO 8601).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most this many results.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_state
def search(state: State, query: tuple[str, ...], raw: bool, topic: str | None, source: str | None,
           since: str | None, limit: int, as_json: bool) -> None:
    """Find stored items by the words of their title and body, best match first.

    Every word must occur (in any form: "regulation" also finds
    "regulations"; accents are ignored); "a phrase" in double quotes must
    occur as written; a trailing * matches the start of a word (regul*).
    Punctuation needs no escaping: AI-Act or gpt-5 are searched as typed.
    Title matches rank above body matches. Items not yet in the search index
    (ingested since the last tag run) are indexed first.
    """
    since_dt = _time_option(since, "--since")
    text = " ".join(query)
    with state.open_store() as store:
        try:
            hits = search_mod.search_items(store, text, raw=raw, topic=topic, source=source, since=since_dt,
                                           limit=limit)
        except search_mod.SearchQueryError as exc:
            hint = "; see the FTS5 query syntax, or leave out --raw to search the words as typed" if raw else ""
            raise PipelineError(f"cannot read the search query {text!r}: {exc}{hint}") from None
    if not hits:
        click.echo(f"no items match {text!r}", err=True)
        return
    for n, h in enumerate(hits, 1):
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "id": h.id,
                        "source": h.source_id,
                        "source_name": h.source_name,
                        "url": h.url,
                        "title": h.title,
                        "published": h.published.isoformat() if h.published else None,
                        "tier": h.tier,
                        "kind": h.kind,
                        "topics": list(h.topics),
                        "event": h.event_id,
                        "score": h.score,
                        "snippet": h.snippet,
                    },
                    ensure_ascii=False,
                )
            )
        else:
            topics = ",".join(h.topics) or "-"
            click.echo(f"{n:>2}. {h.when:%Y-%m-%d}  t{h.tier}  {h.source_name[:22]:<22}  {topics[:30]:<30}  {h.title}")
            if h.snippet:
                click.echo(f"    {h.snippet}")


@cli.group()
def sources() -> None:
    """List, add, remove, import and export the feeds to fetch.

    Sources come from config.toml [[sources]], the fetch.opml file and this
    command (kept in the database). `pipeline sources export` writes OPML 2.0
    that `pipeline sources import` and fetch.opml read back.
    """


@sources.command("list")
@pass_state
def sources_list(state: State) -> None:
    """Show every source with a feed URL: id, tier, where it is defined, URL, last status."""
    config = state.config
    with state.open_store() as store:
        subscribed, problems = fetch_mod.subscribed_sources(config, store)
        store.sync_sources([s for s in subscribed if s.origin != "cli"])
        subscribed, _ = fetch_mod.followed_sources(config, store)  # at their current address
        states = store.fetch_states()
    for p in problems:
        click.echo(f"warning: {p}", err=True)
    click.echo(f"{'ID':<30}{'TIER':<5}{'ORIGIN':<8}{'STATUS':<10}URL")
    for s in sorted((s for s in subscribed if s.url), key=lambda s: (s.tier, s.id)):
        st = states.get(s.id, {})
        status = "disabled" if st.get("disabled") else (st.get("last_status") or "-")
        click.echo(f"{s.id[:29]:<30}{s.tier:<5}{s.origin:<8}{status:<10}{s.url}")


@sources.command("add")
@click.argument("url")
@click.option("--name", help="Display name (default: the feed's domain).")
@click.option("--tier", type=click.IntRange(1, 3), help="Source tier, 1 (primary) to 3 (default: default_tier).")
@click.option("--kind", type=click.Choice(KINDS), help="Default kind of its items.")
@click.option("--category", help="Folder it goes under in an OPML export.")
@click.option("--min-interval", type=click.FloatRange(min=0), metavar="MINUTES",
              help="Its own minimum time between two fetches (default: fetch.min_interval).")
@pass_state
def sources_add(state: State, url: str, name: str | None, tier: int | None, kind: str | None, category: str | None,
                min_interval: float | None) -> None:
    """Follow the feed at URL; given a web page, follow the feed it announces (<link rel="alternate">)."""
    with state.open_store() as store:
        try:
            source = fetch_mod.add_source(store, state.config, url, name=name, tier=tier, kind=kind,
                                          category=category, min_interval=min_interval)
        except fetch_mod.AddError as exc:
            raise PipelineError(str(exc)) from None
    click.echo(f"added {source.id}: {source.url}")


@sources.command("remove")
@click.argument("source_id", metavar="ID")
@pass_state
def sources_remove(state: State, source_id: str) -> None:
    """Stop following a source added with `pipeline sources add` or `import` (its stored items stay)."""
    config = state.config
    with state.open_store() as store:
        subscribed, _ = fetch_mod.subscribed_sources(config, store)
        match = [s for s in subscribed if s.id == source_id]
        if not match:
            raise PipelineError(f"{source_id}: no such source")
        if match[0].origin != "cli":
            where = "config.toml [[sources]]" if match[0].origin == "config" else "the fetch.opml file"
            raise PipelineError(f"{source_id}: defined in {where}; remove it there")
        outcome = store.remove_source(source_id)
    click.echo(f"removed {source_id}" + (" (its stored items stay)" if outcome == "unsubscribed" else ""))


@sources.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_state
def sources_import(state: State, file: Path) -> None:
    """Follow every feed of an OPML file (with its categories, and tier and kind attributes)."""
    config = state.config
    try:
        listed = sources_mod.read_opml(file.read_bytes(), default_tier=config.default_tier)
    except (OSError, sources_mod.OpmlError) as exc:
        raise PipelineError(f"{file}: {exc}") from None
    with state.open_store() as store:
        added, present = fetch_mod.import_sources(store, config, listed)
    click.echo(f"imported {len(added)} source(s); {len(present)} already followed")


@sources.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (default: stdout).")
@pass_state
def sources_export(state: State, output: Path | None) -> None:
    """Write every followed feed as OPML 2.0 (categories as folders, tier and kind as attributes)."""
    with state.open_store() as store:
        subscribed, _ = fetch_mod.followed_sources(state.config, store)  # at their current address
    data = sources_mod.write_opml(subscribed)
    if output is None:
        click.echo(data.decode("utf-8"), nl=False)
        return
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(output)
    click.echo(str(output))


@cli.command()
@click.option("--list", "list_only", is_flag=True,
              help="Print the jobs and their next run times (from --now), then exit without running them.")
@pass_state
def schedule(state: State, list_only: bool) -> None:
    """Run in the foreground: fetch, ingest, tag and cluster at an interval, and write the daily and
    weekly digests at their times (config [schedule]); first make the digests missed while it was down.

    Logs at the information level by default (one line per job), -q for errors only. Stops on
    SIGTERM or Ctrl-C after the running job finishes its current input (a second signal stops at
    once).
    """
    config = state.config
    try:
        specs = schedule_mod.job_specs(config, start=state.now)
    except schedule_mod.ScheduleError as exc:
        raise PipelineError("\n".join(f"{state.config_path}: {p}" for p in exc.problems)) from None
    if list_only:
        tz = config.schedule.timezone
        for job_id, when in schedule_mod.next_fire_times(specs, state.now).items():
            spec = next(s for s in specs if s.id == job_id)
            nxt = when.astimezone(ZoneInfo(tz)).isoformat() if when else "never"
            click.echo(f"{job_id:<15}{nxt:<27}{spec.description}")
        return
    root = click.get_current_context().find_root().params
    if not root.get("quiet") and not root.get("verbose"):
        set_stderr_level(logging.INFO)  # a service: each job's result line belongs in the journal
    try:
        schedule_mod.run_scheduler(config)
    except schedule_mod.ScheduleError as exc:
        raise PipelineError("\n".join(exc.problems)) from None


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Error: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Error: interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the one place errors become a line
        log.debug("unexpected error", exc_info=True)
        click.echo(f"Error: {type(exc).__name__}: {exc} (run with -vv for details)", err=True)
        sys.exit(EXIT_ERROR)
