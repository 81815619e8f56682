"""Summaries: one to three sentences per item and per event, taken from the items' own text.

An item's summary is its opening sentences (skipping bylines, calls to
subscribe and other boilerplate), then one sentence naming the kind of
piece, its source and the source's tier. An event's summary starts the same
way from its headline item and, when other sources reported the event too,
ends with a sentence saying how many and at which tiers; its opening is cut
so the whole stays within three sentences.

Everything here is pure. A lead written elsewhere (by a language model, see
summarizer.py) can take the place of the opening sentences; the closing
sentences are always these.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .cluster import headline_of
from .models import StoredItem

MAX_CHARS = 360
MAX_SENTENCES = 3  # in an event summary, closing sentences included
BOILERPLATE = re.compile(
    r"view (this |it )?(in|on) (your )?browser|unsubscribe|subscribe now|sign up|share this|"
    r"forwarded this|read online|on the web|click here|all rights reserved|^by\s|^photo:|^image:",
    re.I,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)]*\s+(?=[\"'“‘(]?[A-Z0-9])")

_ENDS = re.compile(r"[.!?…][\"'”’)]*$")
# Words that end in a full stop without ending the sentence: "Anthropic v. Department of War", "U.S. chips".
_ABBREVIATION = re.compile(
    r"(?:\b(?:v|vs|Inc|Corp|Co|Ltd|Dr|Mr|Mrs|Ms|St|Jr|Sr|No|Nos|Fig|approx|etc|e\.g|i\.e|cf|Gen|Sen|Rep|Gov|Prof)"
    r"|\b[A-Z](?:\.[A-Z])*)\.$"
)


def split_sentences(text: str) -> list[str]:
    """The sentences of a paragraph, not cut after an abbreviation or an initial."""
    out: list[str] = []
    for part in _SENTENCE_END.split(text):
        if out and _ABBREVIATION.search(out[-1]):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return out

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
            s.strip() for s in split_sentences(paragraph) if len(s.strip()) >= 20 and _ENDS.search(s.strip())
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


def clip_sentences(text: str, limit: int) -> str:
    """The first ``limit`` complete sentences of a line of prose; '' when none is complete.

    A last sentence cut off before its full stop (a reply that ran out of
    tokens) is dropped.
    """
    parts = [p.strip() for p in split_sentences(" ".join(text.split())) if p.strip()]
    if parts and not _ENDS.search(parts[-1]):
        parts.pop()
    return " ".join(parts[: max(limit, 0)])


_COUNTS = ("No", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")


def coverage(head: StoredItem, members: Sequence[StoredItem]) -> str:
    """A sentence on the other sources that reported an event and their tiers; '' when none did."""
    tiers: dict[str, int] = {}
    for m in members:
        if m.source_id != head.source_id:
            tiers[m.source_id] = min(m.tier, tiers.get(m.source_id, m.tier))
    if not tiers:
        return ""
    n = len(tiers)
    distinct = sorted(set(tiers.values()))
    count = _COUNTS[n] if n < len(_COUNTS) else str(n)
    if len(distinct) > 1:
        where = "at tiers " + ", ".join(str(t) for t in distinct[:-1]) + f" and {distinct[-1]}"
    elif n == 1:
        where = f"at tier {distinct[0]}"
    else:
        where = f"{'both' if n == 2 else 'all'} at tier {distinct[0]}"
    return f"{count} more {'source' if n == 1 else 'sources'} covered it, {where}."


def summarize(item: StoredItem, *, lead: str | None = None) -> str:
    """Up to two sentences of the item's own text (or ``lead``), then what kind of piece it is."""
    opening = lead if lead else lead_sentences(item.body)
    tail = describe(item.kind, item.source_name, item.tier)
    return f"{opening} {tail}" if opening else tail


def summarize_event(members: Sequence[StoredItem], *, lead: str | None = None) -> str:
    """One to three sentences on an event, from its member items.

    The headline item's opening sentences (or ``lead``, a summary of that
    item written elsewhere), then the kind of piece with its source and tier,
    then, when other sources reported it, how many and at which tiers. The
    opening gets the sentences the closing ones leave of the three.
    """
    head = headline_of(members)
    tail = [describe(head.kind, head.source_name, head.tier)]
    also = coverage(head, members)
    if also:
        tail.append(also)
    room = MAX_SENTENCES - len(tail)
    opening = (clip_sentences(lead, room) if lead else "") or lead_sentences(head.body, limit=room)
    return " ".join([opening, *tail] if opening else tail)
