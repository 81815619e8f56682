"""Terms of topic rules: phrases matched as stemmed words, or regular expressions.

Shared by config validation and the tag stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PHRASE_WORDS = 5
_TOKEN = re.compile(r"[a-z0-9]+(?:['\u2019.][a-z0-9]+)*")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")


def _stem(word: str) -> str:
    """Fold the plural and possessive endings that make a term miss: 'labs', 'lab's', 'policies'."""
    word = word.replace("\u2019", "'")
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words_of(text: str) -> list[str]:
    return [_stem(w) for w in _TOKEN.findall(text.lower())]


def plain_text(markdown: str) -> str:
    """The words of a Markdown body: link texts kept, addresses and markup dropped."""
    return re.sub(r"[#*_`>|]", " ", _URL.sub(" ", _LINK.sub(r"\1", markdown)))


@dataclass(frozen=True)
class Term:
    text: str  # as written in config
    words: tuple[str, ...] = ()  # a phrase, stemmed
    regex: re.Pattern[str] | None = None
    weight: float = 1.0


def compile_term(text: str, weight: float = 1.0) -> Term:
    """A term from config: a phrase, or a regular expression between slashes."""
    text = text.strip()
    if len(text) > 2 and text.startswith("/") and text.endswith("/"):
        return Term(text, regex=re.compile(text[1:-1], re.IGNORECASE), weight=weight)
    words = tuple(words_of(text.replace("-", " ")))
    if not words:
        raise ValueError(f"term {text!r} has no words")
    if len(words) > MAX_PHRASE_WORDS:
        raise ValueError(f"term {text!r} has more than {MAX_PHRASE_WORDS} words")
    return Term(text, words=words, weight=weight)


_DOUBLED_ESCAPE = re.compile(r"\\\\[bBdDwWsS]")  # "\\b": a backslash, then "b"


def term_error(text: str) -> str | None:
    """Why a term from config cannot be used, or None."""
    try:
        term = compile_term(text)
    except re.error as exc:
        return f"not a valid regular expression: {exc}"
    except ValueError as exc:
        return str(exc)
    doubled = _DOUBLED_ESCAPE.search(text) if term.regex is not None else None
    if doubled:
        letter = doubled.group(0)[-1]
        return (f"{doubled.group(0)} matches a backslash and then the letter {letter}: write \\{letter} once "
                f"in a '...' string, twice in a \"...\" string")
    return None
