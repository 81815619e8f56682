"""HTTP for the fetch stage: one polite, bounded download.

httpx does the transport (timeouts, keep-alive, gzip/deflate/brotli decoding;
brotli through the ``brotli`` package). Here: redirects followed by hand so a
permanent move (301, 308) is seen and reported, a cap on the *decoded* body
size checked as it streams (a gzip bomb stops early), and a total time limit
so a server trickling bytes cannot hold a download forever.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from .config import FetchConfig

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
KEPT_HEADERS = (
    "content-type", "etag", "last-modified", "content-location", "cache-control", "expires", "retry-after",
    "content-encoding", "date",
)


class FetchError(Exception):
    """A download that produced no usable response; the message says why."""


@dataclass(frozen=True)
class Response:
    url: str  # where the body came from, after redirects
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]  # lower-case names, only those worth keeping
    body: bytes
    moved_to: str | None  # new address when every redirect on the way was permanent
    seconds: float

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


class HostLimits:
    """At most ``per_host`` requests at once to any one host, counted on the host each request
    actually goes to: feeds that redirect to one host share its limit."""

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}

    def host_of(self, url: str) -> str:
        try:
            return (urlsplit(url).hostname or url).lower()
        except ValueError:
            return url

    @contextmanager
    def hold(self, url: str) -> Iterator[None]:
        host = self.host_of(url)
        with self._lock:
            slot = self._slots.setdefault(host, threading.BoundedSemaphore(self.per_host))
        with slot:
            yield


def make_client(fetch: FetchConfig) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(connect=fetch.connect_timeout, read=fetch.timeout, write=fetch.timeout, pool=None),
        follow_redirects=False,
        headers={"User-Agent": fetch.user_agent},
        limits=httpx.Limits(max_connections=fetch.workers + 4, max_keepalive_connections=fetch.workers + 4),
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc)
        return f"cannot connect: {'refused' if 'refused' in text.lower() else text}"
    return str(exc) or type(exc).__name__


def download(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    *,
    max_bytes: int,
    total_timeout: float,
    limits: HostLimits | None = None,
) -> Response:
    """GET ``url``; raise FetchError on transport failures, oversize or slow bodies.

    With ``limits``, each request (each hop of a redirect) waits for a free slot on its host.
    """
    started = time.monotonic()
    deadline = started + total_timeout
    permanent = True
    current = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            with limits.hold(current) if limits is not None else nullcontext(), \
                    client.stream("GET", current, headers=headers) as response:
                if response.status_code in REDIRECTS and response.headers.get("location"):
                    permanent = permanent and response.status_code in (301, 308)
                    current = urljoin(current, response.headers["location"])
                    continue
                declared = response.headers.get("content-length", "")
                encoded = response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
                if declared.isdigit() and int(declared) > max_bytes and not encoded:
                    raise FetchError(f"response is {int(declared)} bytes, over the limit of {max_bytes}")
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():  # decoded: the cap holds for what gzip expands to
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError(f"response exceeds the limit of {max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise FetchError(f"download took longer than the limit of {total_timeout:g} seconds")
                    chunks.append(chunk)
                kept = tuple((k.lower(), v) for k, v in response.headers.items() if k.lower() in KEPT_HEADERS)
                return Response(
                    url=current,
                    status=response.status_code,
                    reason=response.reason_phrase,
                    headers=kept,
                    body=b"".join(chunks),
                    moved_to=current if permanent and current != url else None,
                    seconds=time.monotonic() - started,
                )
        raise FetchError(f"more than {MAX_REDIRECTS} redirects")
    except httpx.DecodingError as exc:
        raise FetchError(f"cannot decode the body: {exc}") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise FetchError(_describe(exc)) from None
