"""The Summarizer: what the digest and the pages ask for summaries.

One is built per command run from ``[summarize]`` and the store. With
``summarize.llm`` off (the default) it hands out the extractive summaries of
summarize.py and touches nothing else. With it on, the opening of a summary
comes from a language model (llm.py):

- cached in the store by the item's content hash and the model, so an item is
  asked about once and a later run renders the same digest without a request;
- at most ``summarize.max_per_run`` requests per run; past that, extractive
  openings (and one log line saying so);
- any failure gives the extractive opening and a warning naming the item and
  the reason, never an exception; after three failures in a row the run stops
  asking.

Either way the closing sentences that name the kind of piece, its source and
tier (and, for an event, the other sources) come from summarize.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from types import TracebackType
from typing import Protocol

from .cluster import headline_of
from .config import SummarizeConfig
from .llm import ChatClient, LlmError, item_text
from .models import StoredItem
from .summarize import clip_sentences, summarize, summarize_event

log = logging.getLogger(__name__)

FAILURES_BEFORE_STOP = 3


class SummaryCache(Protocol):
    """Where model-written summaries are kept (the store's ``summaries`` table)."""

    def cached_summary(self, content_hash: str, model: str) -> str | None: ...

    def save_summary(self, content_hash: str, model: str, summary: str, now: datetime) -> None: ...


class Summarizer:
    """Summaries of items and events; extractive unless built with a client and a cache."""

    def __init__(self, client: ChatClient | None = None, cache: SummaryCache | None = None, *,
                 max_per_run: int = 0, now: datetime | None = None):
        if client is not None and cache is None:
            raise ValueError("a Summarizer with a client needs a cache")
        self.client = client
        self.cache = cache
        self.max_per_run = max_per_run
        self.now = now or datetime.now(timezone.utc)
        self.requests = 0  # sent in this run
        self.cached = 0  # summaries read from the cache
        self.failed = 0
        self._failures_in_a_row = 0
        self._stopped = False
        self._budget_logged = False
        self._leads: dict[str, str | None] = {}  # by content hash, for this run

    @classmethod
    def from_config(cls, cfg: SummarizeConfig, cache: SummaryCache, *, now: datetime,
                    environ: Mapping[str, str] | None = None) -> Summarizer:
        """The run's Summarizer: extractive when ``summarize.llm`` is off, else through the endpoint."""
        if not cfg.llm:
            return cls()
        env = os.environ if environ is None else environ
        client = ChatClient(
            base_url=cfg.base_url,
            model=cfg.model,
            api_key=env.get(cfg.api_key_env) or None,  # unset: no Authorization header
            timeout=cfg.timeout,
            max_sentences=cfg.max_sentences,
        )
        return cls(client, cache, max_per_run=cfg.max_per_run, now=now)

    @property
    def uses_llm(self) -> bool:
        return self.client is not None

    def item(self, item: StoredItem) -> str:
        """One to three sentences on an item, ending with its kind, source and tier."""
        lead = self.lead(item)
        if lead and self.client is not None:  # a cached summary may predate a lower max_sentences
            lead = clip_sentences(lead, self.client.max_sentences) or lead
        return summarize(item, lead=lead)

    def event(self, members: Sequence[StoredItem]) -> str:
        """One to three sentences on an event, from its headline item and the other sources."""
        return summarize_event(members, lead=self.lead(headline_of(members)))

    def lead(self, item: StoredItem) -> str | None:
        """The model's summary of an item (cached or asked for now), or None for the extractive one."""
        if self.client is None or self.cache is None:
            return None
        key = item.content_hash
        if key in self._leads:
            return self._leads[key]
        found = self.cache.cached_summary(key, self.client.model)
        if found:
            self.cached += 1
            self._leads[key] = found
            return found
        if self._stopped or not item_text(item.body).strip():
            return None  # nothing to summarize, or the endpoint keeps failing
        if self.requests >= self.max_per_run:
            if not self._budget_logged:
                log.warning(
                    "LLM summaries: budget of %d requests reached (summarize.max_per_run); "
                    "extractive summaries for the rest of this run",
                    self.max_per_run,
                )
                self._budget_logged = True
            return None
        self.requests += 1
        try:
            text = self.client.summarize(title=item.title, source=item.source_name, body=item.body)
        except LlmError as exc:
            self._failed(item, str(exc))
            self._leads[key] = None
            return None
        self._failures_in_a_row = 0
        self.cache.save_summary(key, self.client.model, text, self.now)
        self._leads[key] = text
        return text

    def _failed(self, item: StoredItem, reason: str) -> None:
        self.failed += 1
        self._failures_in_a_row += 1
        title = item.title if len(item.title) <= 80 else item.title[:77] + "..."
        log.warning("LLM summary of item %s (%r) failed: %s; using the extractive summary", item.id, title, reason)
        if self._failures_in_a_row >= FAILURES_BEFORE_STOP:
            self._stopped = True
            log.warning(
                "LLM summaries: %d requests failed in a row; extractive summaries for the rest of this run",
                self._failures_in_a_row,
            )

    def close(self) -> None:
        if self.client is not None:
            log.info("LLM summaries: %d requested, %d failed, %d from the cache", self.requests, self.failed,
                     self.cached)
            self.client.close()

    def __enter__(self) -> Summarizer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
