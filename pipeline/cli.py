"""The command line. The only module that knows about click.

Results go to stdout; logs and problems go to stderr. Errors become one
``Error: ...`` line each. Exit codes: 0 done, 1 error, 2 usage error,
3 done but some inputs were skipped or failed.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import click

from . import cluster as cluster_mod
from . import digest as digest_mod
from . import fetch as fetch_mod
from . import ingest as ingest_mod
from . import tag as tag_mod
from .config import Config, ConfigError, load_config
from .models import StepResult
from .readers import parse_when
from .store import Store

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
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load_config(self.config_path)
            except ConfigError as exc:
                raise PipelineError("\n".join(f"{self.config_path}: {p}" for p in exc.problems)) from None
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


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger("pipeline")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _summary(result: StepResult) -> str:
    counts = ", ".join(f"{v} {k}" for k, v in sorted(result.counts.items()) if v) or "nothing to do"
    return f"{result.stage}: {counts}"


def _execute(state: State, command: str, work: Callable[[Store, Config, datetime], list[StepResult]]) -> None:
    """Run a state-changing command: record it, print its results, exit with the right code."""
    config = state.config
    now = state.now
    with state.open_store() as store:
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
        store.finish_run(
            run_id,
            now=datetime.now(timezone.utc),
            status="partial" if problems else "ok",
            counts=counts,
            problems=problems,
        )
    for r in results:
        click.echo(_summary(r))
        for path in r.paths:
            click.echo(path)
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
@click.version_option(package_name="pipeline")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, verbose: int, quiet: bool, now_text: str | None) -> None:
    """Read feeds, newsletters and pages; tag and cluster them; write digests."""
    _setup_logging(verbose, quiet)
    ctx.obj = State(config_path=config_path, now_text=now_text)


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
            results.append(fetch_mod.fetch_sources(store, config, now))
        if config.ingest.on_run:
            results.append(ingest_mod.ingest_paths(store, config, config.ingest.paths, now))
        results.append(tag_mod.tag_step(store, config, now))
        results.append(cluster_mod.cluster_step(store, config, now))
        results.append(digest_mod.digest_step(store, config, now))
        return results

    _execute(state, "run", work)


@cli.command()
@click.option("--source", "only", multiple=True, metavar="ID", help="Fetch only this source (id or URL); repeatable.")
@pass_state
def fetch(state: State, only: tuple[str, ...]) -> None:
    """Download the feeds of sources that have a URL (config [[sources]] and fetch.opml)."""
    _execute(
        state,
        "fetch",
        lambda store, config, now: [fetch_mod.fetch_sources(store, config, now, only=set(only) or None)],
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


@cli.command()
@click.option("--period", type=click.Choice(digest_mod.PERIODS), default="daily", show_default=True,
              help="Which digest to write.")
@pass_state
def digest(state: State, period: str) -> None:
    """Write the digest of items first seen since the previous digest of the same period."""
    _execute(state, "digest", lambda store, config, now: [digest_mod.digest_step(store, config, now, period=period)])


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
    click.echo("\nStages:")
    for name, count in stages.items():
        click.echo(f"  {name:<22}{count:>7}")
    click.echo("\nLast runs:")
    if not runs:
        click.echo("  none yet")
    for r in runs:
        problems = f", {len(r['problems'])} problem(s)" if r["problems"] else ""
        click.echo(f"  #{r['id']:<4}{r['command']:<10}{r['started']}  {r['status']}{problems}")


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
                    },
                    ensure_ascii=False,
                )
            )
        else:
            date = i.when.strftime("%Y-%m-%d")
            topics = ",".join(i.topics) or "-"
            click.echo(f"{i.id}  {date}  t{i.tier}  {i.source_name[:22]:<22}  {topics[:30]:<30}  {i.title[:80]}")


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
