"""Read and clean one fetched feed: pure, so it can run in a worker process.

The fetch step sends each new body here (through a process pool when many
feeds changed, so parsing uses every CPU while the main process downloads
and writes) and gets back the items, ready to be stored.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace

from .models import Entry, Item, Problem, RawDocument
from .normalize import EmptyEntry, children_of, normalize_entry
from .readers import ReadError, read_document

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParsedFeed:
    source_id: str
    items: tuple[Item, ...]
    problems: tuple[Problem, ...]  # entries that could not be used
    warnings: tuple[str, ...]
    error: str | None  # the whole body could not be read
    entry_hashes: tuple[str, ...] = ()  # one per item: the entry as it arrived
    skipped: int = 0  # entries identical to one already stored, not cleaned again
    guids: frozenset[str] = frozenset()  # entry ids of every entry in the body, skipped ones too
    stories: tuple[tuple[Item, ...], ...] = ()  # one per item: the stories split from it, if a roundup


def entry_hash(entry: Entry, base: str | None) -> str:
    """A hash of everything normalizing reads from an entry: equal hashes give equal items."""
    parts = (
        entry.guid, entry.url, entry.title, entry.author,
        entry.published.isoformat() if entry.published else None,
        entry.content, entry.content_type, "\x1f".join(entry.categories), base,
    )
    return hashlib.sha1("\x1e".join(p or "" for p in parts).encode("utf-8", "surrogatepass")).hexdigest()


def parse_fetched(doc: RawDocument, source_id: str, known: frozenset[str] = frozenset(), *,
                  split: str = "auto") -> ParsedFeed:
    """Items of a fetched feed; entries whose hash is in ``known`` are stored already and skipped."""
    if doc.headers and not any(name == "content-type" for name, _ in doc.headers):
        # feedparser takes response headers without a Content-Type for a response that is not
        # XML (a warning on every such feed, and Latin-1 assumed): read the bytes as a file is read.
        log.debug("%s: no Content-Type; read by its XML declaration", doc.origin)
        doc = replace(doc, headers=())
    try:
        parsed = read_document(doc)
    except ReadError as exc:
        return ParsedFeed(source_id, (), (), (), str(exc))
    items: list[Item] = []
    hashes: list[str] = []
    stories: list[tuple[Item, ...]] = []
    skipped = 0
    problems: list[Problem] = []
    warnings: list[str] = []
    guids: set[str] = set()
    for pd in parsed:
        warnings.extend(pd.warnings)
        base = pd.hint.site_url or pd.hint.feed_url
        for n, entry in enumerate(pd.entries, 1):
            h = entry_hash(entry, base)
            if h in known:
                skipped += 1
                if entry.guid:
                    guids.add(entry.guid.strip())
                continue
            try:
                items.append(normalize_entry(entry, source_id=source_id, raw_id=doc.id, base_url=base))
                hashes.append(h)
                guids.add(items[-1].guid)
                stories.append(children_of(items[-1], mode=split) if split != "never" else ())
            except EmptyEntry as exc:
                problems.append(Problem(f"{doc.origin} (entry {n})", str(exc)))
    return ParsedFeed(source_id, tuple(items), tuple(problems), tuple(warnings), None, tuple(hashes), skipped,
                      frozenset(guids), tuple(stories))


def warm_up() -> None:
    """Run in each worker once, so the first real feed does not pay for imports."""
