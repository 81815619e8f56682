"""Summaries: one to three sentences per item, taken from its own text.

The summary is the item's opening sentences (skipping bylines, calls to
subscribe and other boilerplate), then one sentence naming the kind of
piece, its source and the source's tier.
"""

from __future__ import annotations

import re

from .models import StoredItem

MAX_CHARS = 360
BOILERPLATE = re.compile(
    r"view (this |it )?(in|on) (your )?browser|unsubscribe|subscribe now|sign up|share this|"
    r"forwarded this|read online|on the web|click here|all rights reserved|^by\s|^photo:|^image:",
    re.I,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)]*\s+(?=[\"'“‘(]?[A-Z0-9])")

_ENDS = re.compile(r"[.!?…][\"'”’)]*$")

KIND_PHRASES = {
    "news": "news report",
    "commentary": "commentary",
    "op-ed": "op-ed",
    "announcement": "announcement",
    "research": "research write-up",
    "digest": "roundup",
    "guide": "guide",
}


def plain_text(markdown: str) -> str:
    """Markdown reduced to readable plain text on one line per paragraph."""
    text = re.sub(r"(?m)^\s*\|.*$", "", markdown)  # tables are not prose
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"^\s{0,3}(#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)", "", text, flags=re.M)
    text = re.sub(r"(\*\*|__|\*|`)", "", text)
    text = re.sub(r"\\([\\`*_{}\[\]()#+\-.!<>])", r"\1", text)
    return text


def sentences(markdown: str) -> list[str]:
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", plain_text(markdown)):
        paragraph = " ".join(paragraph.split())
        if len(paragraph) < 30 or BOILERPLATE.search(paragraph):
            continue
        out.extend(
            s.strip() for s in _SENTENCE_END.split(paragraph) if len(s.strip()) >= 20 and _ENDS.search(s.strip())
        )
    return out


def describe(kind: str | None, source: str, tier: int) -> str:
    phrase = KIND_PHRASES.get(kind or "news", kind or "item")
    article = "An" if phrase[0] in "aeiou" else "A"
    return f"{article} {phrase} from {source}, a tier-{tier} source."


def lead_sentences(body: str, *, limit: int = 2, max_chars: int = MAX_CHARS) -> str:
    chosen: list[str] = []
    for s in sentences(body):
        if chosen and len(" ".join(chosen + [s])) > max_chars:
            break
        chosen.append(s if len(s) <= max_chars else s[: max_chars - 3].rsplit(" ", 1)[0] + "...")
        if len(chosen) == limit:
            break
    return " ".join(chosen)


def summarize(item: StoredItem) -> str:
    """Up to two sentences of the item's own text, then what kind of piece it is."""
    lead = lead_sentences(item.body)
    tail = describe(item.kind, item.source_name, item.tier)
    return f"{lead} {tail}" if lead else tail
