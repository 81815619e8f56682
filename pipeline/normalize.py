"""Normalize: parsed entries in, clean items out.

Titles are cleaned, HTML becomes Markdown (markdownify), times are UTC, URLs
are canonical (no tracking parameters, fragment or default port), and every
item gets a content hash of its normalized text.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import re
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from bs4 import BeautifulSoup
from markdownify import MarkdownConverter

from .models import Entry, Item
from .readers import NON_CONTENT_TAGS
from .store import item_id_for

TRACKING_PARAMS = {
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "twclid", "ttclid",
    "mc_cid", "mc_eid", "_hsenc", "_hsmi", "__hssc", "__hstc", "__hsfp", "hsctatracking",
    "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_conv", "vero_id", "ck_subscriber_id",
    "ref", "ref_src", "ref_url", "referrer", "cmpid", "s_cid", "spm", "at_medium", "at_campaign",
    "sr_share", "ncid", "ocid", "wt.mc_id", "trk", "trkcampaign", "sc_campaign", "sc_channel",
}
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "piwik_", "matomo_", "hsa_", "__s", "_bta_")
DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str | None, base: str | None = None) -> str | None:
    """The URL without tracking parameters, fragment or default port; None if not http(s)."""
    if not url:
        return None
    url = html_lib.unescape(url.strip())
    if base:
        url = urljoin(base, url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in TRACKING_PARAMS and not k.lower().startswith(TRACKING_PREFIXES)
    ]
    path = parts.path or "/"
    return urlunsplit((scheme, netloc, path, urlencode(query, doseq=True), ""))


def clean_text_line(value: str | None) -> str:
    """One line of plain text: entities decoded, control characters and extra spaces removed."""
    if not value:
        return ""
    text = html_lib.unescape(value)
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]", " ", text)
    return " ".join(text.split())


class _Converter(MarkdownConverter):
    """markdownify with ATX headings and '-' bullets."""

    def __init__(self) -> None:
        super().__init__(heading_style="ATX", bullets="-", escape_underscores=False, escape_asterisks=False)


_converter = _Converter()


def html_to_markdown(html: str) -> str:
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(NON_CONTENT_TAGS):
        tag.decompose()
    for img in soup.find_all("img"):
        # tracking pixels and spacer images carry nothing a reader needs
        if img.get("width") in ("0", "1") or img.get("height") in ("0", "1") or not img.get("src"):
            img.decompose()
    return tidy_markdown(_converter.convert_soup(soup))


def tidy_markdown(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def to_markdown(content: str, content_type: str) -> str:
    if content_type == "html":
        return html_to_markdown(content)
    return tidy_markdown(content)


def content_hash(title: str, body: str) -> str:
    """Hash of the normalized text, so the same content found twice is recognized."""
    norm = " ".join(title.lower().split()) + "\n" + " ".join(body.lower().split())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:32]


def _title_from_body(body: str) -> str:
    plain = re.sub(r"[#*_`>\[\]]|\(http[^)]*\)", "", body)
    first = re.split(r"(?<=[.!?])\s|\n", plain.strip(), maxsplit=1)[0]
    return first[:117] + "..." if len(first) > 120 else first


class EmptyEntry(ValueError):
    """An entry with neither a title nor any text."""


def normalize_entry(entry: Entry, *, source_id: str, raw_id: str | None, base_url: str | None) -> Item:
    body = to_markdown(entry.content or "", entry.content_type)
    title = clean_text_line(entry.title) or clean_text_line(_title_from_body(body))
    if not title and not body:
        raise EmptyEntry("entry has neither a title nor any text")
    url = canonical_url(entry.url, base_url)
    guid = (entry.guid or url or content_hash(title, body)).strip()
    return Item(
        id=item_id_for(source_id, guid),
        source_id=source_id,
        guid=guid,
        url=url,
        title=title or "(untitled)",
        author=clean_text_line(entry.author) or None,
        published=entry.published,
        body=body,
        content_hash=content_hash(title, body),
        raw_id=raw_id,
        categories=tuple(dict.fromkeys(clean_text_line(c) for c in entry.categories if clean_text_line(c))),
    )
