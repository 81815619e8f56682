"""Links: unwrap click-tracking redirects to the page they lead to.

Newsletters rarely link to a story directly: each link goes through the
sender's click tracker, which records the click and redirects. Where the
tracker carries its target inside the URL, the target can be read without
following the redirect:

- a query parameter holding the URL (``?url=``, ``?u=``, ``?q=``, ``?redirect=``,
  ``?target=`` ...), as Outlook safe links, Google, Facebook and many mailers do;
- a path segment holding it, percent-encoded (``/click/https%3A%2F%2F...``) or
  base64-encoded (ConvertKit puts the base64url target last);
- a base64url JSON object holding it (Substack's ``/redirect/2/<payload>.<signature>``).

Targets are unwrapped repeatedly (a tracker may wrap another one). Trackers
that keep the target on their server only (Mailchimp's ``list-manage.com``,
beehiiv's ``/ss/c/``) cannot be read, and their links are left as they are.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from urllib.parse import parse_qsl, unquote, urlsplit

# Query parameters that trackers use for the address they redirect to.
TARGET_PARAMS = (
    "url", "u", "q", "redirect", "redirect_url", "redirect_to", "redir", "target", "target_url",
    "dest", "destination", "link", "href", "to", "goto", "out", "r", "l",
)
MAX_DEPTH = 4
_B64_SEGMENT = re.compile(r"^[A-Za-z0-9_\-+/=]{16,}$")
_JSON_URL_KEYS = ("e", "url", "u", "target", "href", "link", "dest")


def _is_web_url(value: str) -> bool:
    if not value.startswith(("http://", "https://")):
        return False
    try:
        return bool(urlsplit(value).hostname)
    except ValueError:
        return False


def _b64decode(segment: str) -> bytes | None:
    text = segment.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _from_base64(segment: str) -> str | None:
    """The web address a base64 path segment encodes, directly or as a JSON object."""
    if not segment.startswith(("aHR0", "eyJ")) or not _B64_SEGMENT.match(segment):
        return None  # base64 of "http" starts "aHR0", of a JSON object "eyJ"
    raw = _b64decode(segment)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _is_web_url(text.strip()):
        return text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if isinstance(data, dict):
            for key in _JSON_URL_KEYS:
                value = data.get(key)
                if isinstance(value, str) and _is_web_url(value):
                    return value
    return None


_TARGET_SIGNS = ("http", "aHR0", "eyJ")  # a target in plain or percent-encoded form, in base64, in base64 JSON


def tracked_target(url: str) -> str | None:
    """The address a click-tracking URL redirects to, when the URL itself says; else None."""
    rest = url[8:]
    if not any(sign in rest for sign in _TARGET_SIGNS):
        return None  # nothing in it could name another address
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    params = {k.lower(): v for k, v in parse_qsl(parts.query, keep_blank_values=False)}
    for key in TARGET_PARAMS:
        value = params.get(key, "").strip()
        if _is_web_url(value):
            return value
        if value.startswith(("http%3A", "https%3A", "http%3a", "https%3a")) and _is_web_url(unquote(value)):
            return unquote(value)
    segments = [s for s in parts.path.split("/") if s]
    for n, segment in enumerate(segments):
        decoded = unquote(segment)
        if decoded.lower() in ("http:", "https:") and n + 1 < len(segments):
            # the target's own slashes kept in the path: /click/https://news.example/story
            rest = parts.path.split(segment, 1)[1].lstrip("/")
            candidate = f"{decoded}//{rest}" + (f"?{parts.query}" if parts.query else "")
            if _is_web_url(candidate):
                return candidate
        if _is_web_url(decoded):
            return decoded
    # base64 targets: the last segments first (ConvertKit), and the payload before a signature (Substack)
    for segment in reversed(segments):
        for piece in dict.fromkeys((segment, segment.split(".", 1)[0])):
            target = _from_base64(piece)
            if target:
                return target
    return None


def unwrap(url: str) -> str:
    """The final target of a chain of readable trackers (the URL itself when it is not one)."""
    seen = {url}
    for _ in range(MAX_DEPTH):
        target = tracked_target(url)
        if target is None or target in seen:
            break
        seen.add(target)
        url = target
    return url
