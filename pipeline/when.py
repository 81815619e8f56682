"""Times as inputs give them: ISO 8601, RFC 822 and the odd formats feeds use, made UTC."""

from __future__ import annotations

import email.utils
from datetime import datetime, timezone
from typing import Any


def parse_when(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from ISO 8601, RFC 822 or a time tuple; None if unknown.

    A time without a zone is taken as UTC. A value that names an impossible
    time (31 February, year 0) is unknown, not an error.
    """
    if value is None or value == "":
        return None
    try:
        if isinstance(value, datetime):
            dt = value
        elif isinstance(value, tuple) or hasattr(value, "tm_year"):
            dt = datetime(*tuple(value)[:6], tzinfo=timezone.utc)
        else:
            dt = _parse_date_text(str(value).strip())
            if dt is None:
                return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.astimezone(timezone.utc)
    except (ValueError, OverflowError, TypeError):
        return None


def _parse_date_text(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        pass
    import feedparser  # only for the odd formats: the command line's times need not load it

    parsed = feedparser.datetimes._parse_date(text)  # handles the many odd feed formats
    return datetime(*parsed[:6], tzinfo=timezone.utc) if parsed else None
