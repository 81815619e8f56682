"""When to fetch a feed again: the pure scheduling core of the fetch stage.

No I/O and no clock: ``now`` and the random spread are passed in, so every
rule here is tested with plain asserts.

- A feed is due once its ``next_attempt`` has passed (``--force`` ignores it);
  a disabled feed (410 Gone) is never due.
- After a success the next attempt waits the longest of the minimum interval,
  the feed's ``Cache-Control: max-age`` and any ``Retry-After``.
- After a failure it waits 10 minutes, doubled with each failure in a row, up
  to ``max_backoff``, spread by a random factor between 0.75 and 1.25 so
  feeds that failed together do not all come back at once; a ``Retry-After``
  longer than that wins.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

BACKOFF_BASE = timedelta(minutes=10)
MAX_CACHE_AGE = timedelta(days=1)  # a feed asking for more is still read daily
MAX_RETRY_AFTER = timedelta(days=7)
PERMANENT_REDIRECTS = (301, 308)


@dataclass(frozen=True)
class Schedule:
    next_attempt: datetime
    expires: datetime | None  # when a cached copy goes stale (Cache-Control max-age)


def is_due(*, next_attempt: datetime | None, disabled: str | None, now: datetime, force: bool) -> bool:
    if disabled:
        return False
    return force or next_attempt is None or next_attempt <= now


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (a number or an HTTP date), capped at a week."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    return max(0.0, min(seconds, MAX_RETRY_AFTER.total_seconds()))


def max_age_seconds(cache_control: str | None) -> float | None:
    """Freshness lifetime from Cache-Control (max-age, or 0 for no-cache/no-store), capped at a day."""
    if not cache_control:
        return None
    age: float | None = None
    for part in cache_control.lower().split(","):
        name, _, value = part.strip().partition("=")
        if name in ("no-cache", "no-store"):
            return 0.0
        if name in ("max-age", "s-maxage") and value.strip().strip('"').isdigit():
            seconds = float(value.strip().strip('"'))
            age = seconds if age is None else max(age, seconds)
    if age is None:
        return None
    return min(age, MAX_CACHE_AGE.total_seconds())


def jitter_for(source_id: str, errors: int, now: datetime) -> float:
    """A spread in [0, 1) that differs between sources and failures but is the same on a re-run."""
    digest = hashlib.sha256(f"{source_id}\0{errors}\0{now.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def after_success(
    *, now: datetime, min_interval: timedelta, max_age: float | None, retry_after: float | None
) -> Schedule:
    wait = max(min_interval, timedelta(seconds=max_age or 0), timedelta(seconds=retry_after or 0))
    expires = now + timedelta(seconds=max_age) if max_age is not None else None
    return Schedule(next_attempt=now + wait, expires=expires)


def backoff(errors: int, *, max_backoff: timedelta, jitter: float) -> timedelta:
    """Wait after ``errors`` failures in a row (errors >= 1)."""
    base = BACKOFF_BASE * (2 ** min(max(errors, 1) - 1, 30))
    return min(base, max_backoff) * (0.75 + 0.5 * jitter)


def after_failure(
    *,
    now: datetime,
    errors: int,
    max_backoff: timedelta,
    jitter: float,
    retry_after: float | None,
    min_interval: timedelta = timedelta(0),
) -> Schedule:
    wait = max(backoff(errors, max_backoff=max_backoff, jitter=jitter), timedelta(seconds=retry_after or 0))
    return Schedule(next_attempt=now + max(wait, min_interval), expires=None)
