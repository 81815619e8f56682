"""Read and clean one fetched feed: pure, so it can run in a worker process.

The fetch step sends each new body here (through a process pool when many
feeds changed, so parsing uses every CPU while the main process downloads
and writes) and gets back the items, ready to be stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .models import Entry, Item, Problem, RawDocument
from .normalize import EmptyEntry, normalize_entry
from .readers import ReadError, read_document


@dataclass(frozen=True)
class ParsedFeed:
    source_id: str
    items: tuple[Item, ...]
    problems: tuple[Problem, ...]  # entries that could not be used
    warnings: tuple[str, ...]
    error: str | None  # the whole body could not be read
    entry_hashes: tuple[str, ...] = ()  # one per item: the entry as it arrived
    skipped: int = 0  # entries identical to one already stored, not cleaned again


def entry_hash(entry: Entry, base: str | None) -> str:
    """A hash of everything normalizing reads from an entry: equal hashes give equal items."""
    parts = (
        entry.guid, entry.url, entry.title, entry.author,
        entry.published.isoformat() if entry.published else None,
        entry.content, entry.content_type, "\x1f".join(entry.categories), base,
    )
    return hashlib.sha1("\x1e".join(p or "" for p in parts).encode("utf-8", "surrogatepass")).hexdigest()


def parse_fetched(doc: RawDocument, source_id: str, known: frozenset[str] = frozenset()) -> ParsedFeed:
    """Items of a fetched feed; entries whose hash is in ``known`` are stored already and skipped."""
    try:
        parsed = read_document(doc)
    except ReadError as exc:
        return ParsedFeed(source_id, (), (), (), str(exc))
    items: list[Item] = []
    hashes: list[str] = []
    skipped = 0
    problems: list[Problem] = []
    warnings: list[str] = []
    for pd in parsed:
        warnings.extend(pd.warnings)
        base = pd.hint.site_url or pd.hint.feed_url
        for n, entry in enumerate(pd.entries, 1):
            h = entry_hash(entry, base)
            if h in known:
                skipped += 1
                continue
            try:
                items.append(normalize_entry(entry, source_id=source_id, raw_id=doc.id, base_url=base))
                hashes.append(h)
            except EmptyEntry as exc:
                problems.append(Problem(f"{doc.origin} (entry {n})", str(exc)))
    return ParsedFeed(source_id, tuple(items), tuple(problems), tuple(warnings), None, tuple(hashes), skipped)


def warm_up() -> None:
    """Run in each worker once, so the first real feed does not pay for imports."""
