"""How the store writes and reads times: ISO 8601 text in UTC, to the second."""

from __future__ import annotations

from datetime import datetime, timezone


def ts(value: datetime | None) -> str | None:
    """A UTC ISO 8601 string for the store; a time without a zone is a mistake, not UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return value.astimezone(timezone.utc).isoformat(timespec="seconds")


def parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
