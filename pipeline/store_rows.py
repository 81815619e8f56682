"""Items as the store reads them back: the query every item listing starts from, and its rows as
records."""

from __future__ import annotations

import json
from typing import Any

from .models import StoredItem
from .store_time import parse_ts

ITEM_SELECT = """
SELECT i.id, i.source_id, s.name AS source_name, s.tier, s.kind AS source_kind,
       i.url, i.title, i.author, i.published, i.first_seen, i.body, i.content_hash,
       i.kind, i.categories, ei.event_id, i.parent_id,
       (SELECT COUNT(*) FROM items c WHERE c.parent_id = i.id) AS children,
       (SELECT json_group_array(topic_id) FROM
           (SELECT topic_id FROM item_topics t WHERE t.item_id = i.id ORDER BY score DESC, topic_id))
           AS topics
FROM items i
JOIN sources s ON s.id = i.source_id
LEFT JOIN event_items ei ON ei.item_id = i.id
"""


def stored_item(row: dict[str, Any]) -> StoredItem:
    return StoredItem(
        id=row["id"],
        source_id=row["source_id"],
        source_name=row["source_name"],
        tier=row["tier"],
        url=row["url"],
        title=row["title"],
        author=row["author"],
        published=parse_ts(row["published"]),
        first_seen=parse_ts(row["first_seen"]),  # type: ignore[arg-type]
        body=row["body"],
        content_hash=row["content_hash"],
        kind=row["kind"],
        topics=tuple(json.loads(row["topics"] or "[]")),
        event_id=row["event_id"],
        source_kind=row["source_kind"],
        categories=tuple(json.loads(row["categories"] or "[]")),
        parent_id=row["parent_id"],
        children=row["children"],
    )
