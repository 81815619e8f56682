"""The filters that listing and searching items share (by topic, source and date), as SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .store_time import ts


def item_filters(*, topic: str | None, source: str | None, since: datetime | None) -> tuple[list[str], list[Any]]:
    """WHERE conditions and their parameters over ``items i`` joined with ``sources s``."""
    where: list[str] = []
    params: list[Any] = []
    if topic:
        where.append("EXISTS (SELECT 1 FROM item_topics t WHERE t.item_id = i.id AND t.topic_id = ?)")
        params.append(topic)
    if source:
        where.append("(i.source_id = ? OR s.name = ?)")
        params += [source, source]
    if since:
        where.append("COALESCE(i.published, i.first_seen) >= ?")
        params.append(ts(since))
    return where, params
