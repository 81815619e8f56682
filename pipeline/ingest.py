"""Ingest: take in local files (feeds, e-mails, mbox, Maildir, pages, text).

Each input is stored as a raw document, read, normalized and stored as items
in one transaction, so a failure halfway leaves nothing half-written. An input
already stored with the same bytes is not read again.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from .config import Config
from .interrupt import stop_requested
from .models import Item, Problem, RawDocument, Source, StepResult
from .normalize import EmptyEntry, children_of, normalize_entry
from .readers import ReadError, detect_media, read_document
from .sources import resolve_source
from .store import Store

log = logging.getLogger(__name__)

SKIPPED_NAMES = ("readme", "license", "licence", "changelog")
SKIPPED_SUFFIXES = (".opml",)


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()


def discover(paths: Iterable[Path]) -> Iterator[tuple[Path, str | None]]:
    """Files to read under the given paths, in a stable order, with their media if known."""
    for path in paths:
        if _is_maildir(path):
            for sub in ("cur", "new"):
                for f in sorted((path / sub).iterdir()):
                    if f.is_file() and not f.name.startswith("."):
                        yield f, "email"
        elif path.is_dir():
            for child in sorted(path.iterdir()):
                if child.name.startswith("."):
                    continue
                if child.is_dir():
                    yield from discover([child])
                elif child.stem.lower() not in SKIPPED_NAMES and child.suffix.lower() not in SKIPPED_SUFFIXES:
                    yield child, None
        else:
            yield path, None


def raw_from_bytes(payload: bytes, *, origin: str, media: str, received: datetime,
                   headers: tuple[tuple[str, str], ...] = ()) -> RawDocument:
    return RawDocument(
        id=hashlib.sha256(payload).hexdigest(),
        origin=origin,
        media=media,
        payload=payload,
        received=received,
        headers=headers,
    )


def store_document(
    store: Store,
    config: Config,
    doc: RawDocument,
    now: datetime,
    *,
    source: Source | None = None,
    known: list[Source] | None = None,
) -> tuple[Counter[str], list[Problem]]:
    """Read one raw document and store it with its items, all or nothing.

    ``source`` is given when the caller knows the publisher (a fetched feed);
    otherwise it is worked out from what the document says.
    """
    counts: Counter[str] = Counter()
    problems: list[Problem] = []
    try:
        parsed = read_document(doc)
    except ReadError as exc:
        with store.transaction():
            store.add_raw(doc, source.id if source else None)
            store.mark_raw_failed(doc.id, str(exc))
        counts["failed"] += 1
        return counts, [Problem(doc.origin, str(exc))]
    known = known if known is not None else store.sources()
    with store.transaction():
        store.add_raw(doc, source.id if source else None)
        for pd in parsed:
            for warning in pd.warnings:
                log.warning("%s: %s", doc.origin, warning)
            src = source or resolve_source(
                pd.hint,
                known,
                item_urls=[e.url for e in pd.entries],
                default_tier=config.default_tier,
            )
            if all(k.id != src.id for k in known):
                store.add_source(src)
                known.append(src)
            store.set_raw_source(doc.id, src.id)
            base = pd.hint.site_url or pd.hint.feed_url
            items = []
            for n, entry in enumerate(pd.entries, 1):
                try:
                    items.append(normalize_entry(entry, source_id=src.id, raw_id=doc.id, base_url=base))
                except EmptyEntry as exc:
                    problems.append(Problem(f"{doc.origin} (entry {n})", str(exc)))
                    counts["empty entries"] += 1
            siblings = {i.guid for i in items}
            for item in items:
                outcome = store_with_stories(store, item, now, siblings=siblings, split=src.split)
                counts.update(outcome)
    counts["files read"] += 1
    return counts, problems


def store_with_stories(
    store: Store,
    item: Item,
    now: datetime,
    *,
    siblings: Iterable[str],
    split: str,
    stories: tuple[Item, ...] | None = None,
) -> Counter[str]:
    """Store an item and, when it is a roundup, the stories split from it.

    ``stories`` may hold the stories split beforehand (by a worker process);
    they are split again when the item turned out to be stored under another id.
    A copy of another source's item brings no stories: that item has them.
    """
    counts: Counter[str] = Counter()
    outcome, row_id, row_guid = store.store_item(item, now, siblings=siblings)
    counts[outcome] += 1
    if outcome == "duplicate":
        return counts
    if split == "never":
        stories = ()
    elif stories is None or (row_id, row_guid) != (item.id, item.guid):
        stories = children_of(replace(item, id=row_id, guid=row_guid), mode=split)
    story_ids = {s.guid for s in stories}
    for story in stories:
        counts["stories " + store.upsert_item(story, now, siblings=story_ids)] += 1
    removed = store.remove_stale_stories(row_id, story_ids)  # an edited issue, or a new split setting
    if removed:
        counts["stories removed"] += removed
    return counts


def ingest_paths(store: Store, config: Config, paths: Iterable[Path], now: datetime) -> StepResult:
    counts: Counter[str] = Counter()
    problems: list[Problem] = []
    known = store.sources()
    for path in paths:
        if stop_requested():
            break
        if not path.exists():
            problems.append(Problem(display_path(path), "no such file or folder"))
            counts["failed"] += 1
            continue
        for file, media in discover([path]):
            if stop_requested():  # between files: every stored file is complete
                log.warning("ingest stopped on request; the next run reads the remaining files")
                break
            where = display_path(file)
            try:
                payload = file.read_bytes()
            except OSError as exc:
                problems.append(Problem(where, f"cannot read: {exc.strerror}"))
                counts["failed"] += 1
                continue
            media = media or detect_media(file, payload[:1024])
            if media is None:
                problems.append(Problem(where, "unrecognized file type (expected a feed, e-mail, mbox, HTML, Markdown or text file)"))
                counts["failed"] += 1
                continue
            doc = raw_from_bytes(payload, origin=where, media=media, received=now)
            if store.has_raw(doc.id):
                counts["unchanged files"] += 1
                continue
            c, p = store_document(store, config, doc, now, known=known)
            counts.update(c)
            problems.extend(p)
            log.debug("%s: %s", where, dict(c))
    for p in problems:
        log.warning("skipped %s", p)
    return StepResult("ingest", dict(counts), tuple(problems))


def renormalize(store: Store, config: Config, now: datetime) -> StepResult:
    """Read every stored raw document again, as if it had just arrived."""
    counts: Counter[str] = Counter()
    problems: list[Problem] = []
    known = store.sources()
    fetched_from = {s.url: s for s in known if s.url}
    for doc in store.raw_documents():
        if stop_requested():  # between documents; the next run reads them all again anyway
            break
        c, p = store_document(store, config, doc, now, source=fetched_from.get(doc.origin), known=known)
        counts.update(c)
        problems.extend(p)
    return StepResult("normalize", dict(counts), tuple(problems))
