"""Fetch: download the feeds of sources that have a URL (config and OPML).

The only stage that touches the network. ETag and Last-Modified are sent
back, so an unchanged feed answers 304 and costs nothing; a body whose bytes
were already stored is not read again. One failing source never stops the
others: its failure is recorded and reported.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import httpx

from .config import Config
from .ingest import raw_from_bytes, store_document
from .models import Problem, Source, StepResult
from .sources import OpmlError, read_opml
from .store import Store

log = logging.getLogger(__name__)


class TooLarge(Exception):
    pass


def subscribed_sources(config: Config) -> tuple[list[Source], list[Problem]]:
    """Sources from config plus those of the OPML file; config wins on the same id or URL."""
    sources = list(config.sources)
    problems: list[Problem] = []
    if config.fetch.opml is not None:
        try:
            listed = read_opml(config.fetch.opml.read_bytes(), default_tier=config.default_tier)
        except (OSError, OpmlError) as exc:
            problems.append(Problem(str(config.fetch.opml), str(exc)))
            listed = []
        taken_ids = {s.id for s in sources}
        taken_urls = {s.url for s in sources if s.url}
        sources += [s for s in listed if s.id not in taken_ids and s.url not in taken_urls]
    return sources, problems


@dataclass(frozen=True)
class Fetched:
    status: int
    reason: str
    headers: httpx.Headers
    body: bytes


def download(client: httpx.Client, url: str, headers: dict[str, str], max_bytes: int) -> Fetched:
    """GET with a cap on the body size: reading stops once the body passes ``max_bytes``."""
    with client.stream("GET", url, headers=headers) as response:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise TooLarge(f"response is {int(declared)} bytes, over the limit of {max_bytes}")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"response exceeds the limit of {max_bytes} bytes")
            chunks.append(chunk)
        return Fetched(response.status_code, response.reason_phrase, response.headers, b"".join(chunks))


def fetch_sources(store: Store, config: Config, now: datetime, *, only: set[str] | None = None) -> StepResult:
    sources, problems = subscribed_sources(config)
    store.sync_sources(sources)
    known = store.sources()
    counts: Counter[str] = Counter()
    targets = [s for s in sources if s.url and (only is None or s.id in only or s.url in only)]
    with httpx.Client(
        timeout=config.fetch.timeout,
        follow_redirects=True,
        headers={"User-Agent": config.fetch.user_agent},
    ) as client:
        for source in targets:
            assert source.url
            state = store.fetch_state(source.id)
            headers = {}
            if state.get("etag"):
                headers["If-None-Match"] = state["etag"]
            if state.get("last_modified"):
                headers["If-Modified-Since"] = state["last_modified"]
            try:
                response = download(client, source.url, headers, config.fetch.max_bytes)
            except (httpx.HTTPError, httpx.InvalidURL, TooLarge) as exc:
                message = str(exc) or type(exc).__name__
                store.record_fetch(source.id, when=now, status="error", error=message)
                problems.append(Problem(source.url, message))
                counts["failed"] += 1
                continue
            if response.status == 304:
                store.record_fetch(source.id, when=now, status="304")
                counts["not modified"] += 1
                continue
            if response.status >= 400:
                message = f"HTTP {response.status} {response.reason}"
                store.record_fetch(source.id, when=now, status=str(response.status), error=message)
                problems.append(Problem(source.url, message))
                counts["failed"] += 1
                continue
            doc = raw_from_bytes(
                response.body,
                origin=source.url,
                media="feed",
                received=now,
                headers=tuple(
                    (k, v) for k, v in response.headers.items()
                    if k.lower() in ("content-type", "etag", "last-modified", "content-location")
                ),
            )
            counts["fetched"] += 1
            error = None
            if store.has_raw(doc.id):
                counts["unchanged bodies"] += 1
            else:
                c, p = store_document(store, config, doc, now, source=source, known=known)
                counts.update(c)
                problems.extend(p)
                error = "; ".join(x.message for x in p) or None
            # validators are kept only once the body is stored, so a failed store is fetched again
            store.record_fetch(
                source.id,
                when=now,
                status=str(response.status),
                error=error,
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
            )
    for p in problems:
        log.warning("fetch failed: %s", p)
    return StepResult("fetch", dict(counts), tuple(problems))
