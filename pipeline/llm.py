"""Summaries from a language model behind an OpenAI-compatible chat completions endpoint.

``build_request`` makes the request for one item (URL, headers, JSON body) and
``parse_reply`` reads the summary out of a reply body; both are pure and raise
nothing but ``LlmError``. ``ChatClient`` sends the requests with httpx and turns
every failure (refused connection, timeout, an HTTP error status, a body that is
not the expected JSON) into an ``LlmError`` whose message says why. When to ask,
the cache and the budget are the Summarizer's business (summarizer.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from types import TracebackType

import httpx

from .summarize import clip_sentences, plain_text

MAX_TEXT_CHARS = 4000  # of the item's text sent to the model
MAX_TOKENS = 200  # asked of the model: a few sentences
MAX_REPLY_CHARS = 1200  # a longer summary is not a summary; the extractive one is used
MAX_RESPONSE_BYTES = 1_000_000  # a reply body larger than this is refused as it streams
_HOW_MANY = {1: "one plain sentence", 2: "one or two plain sentences", 3: "one to three plain sentences"}
_PREAMBLE = re.compile(r"^(?:summary|here(?: is|'s| are)[^:]{0,60}):\s*", re.I)


class LlmError(Exception):
    """No usable summary came back; the message says why."""


@dataclass(frozen=True)
class ChatRequest:
    url: str
    headers: tuple[tuple[str, str], ...]
    payload: bytes  # the JSON body


def system_prompt(max_sentences: int) -> str:
    count = _HOW_MANY.get(max_sentences, f"one to {max_sentences} plain sentences")
    return (
        f"You write the summaries of a news digest. Summarize the item the user sends in {count}. "
        "Be factual: say only what the item says, and name who did what. Start with the summary itself: "
        "no preamble, no heading, no list, no Markdown, and do not name the publication, which the digest "
        "names separately."
    )


def item_text(body: str, limit: int = MAX_TEXT_CHARS) -> str:
    """The item's Markdown as plain paragraphs, cut at a word boundary to at most ``limit`` characters."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", plain_text(body))]
    text = "\n\n".join(p for p in paragraphs if p)
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip() + " [...]"


def user_message(*, title: str, source: str, text: str) -> str:
    return f"Title: {title.strip()}\nPublished by: {source}\n\n{text}"


def build_request(
    *, base_url: str, model: str, title: str, source: str, body: str, max_sentences: int, api_key: str | None
) -> ChatRequest:
    """The chat completions request that asks for a summary of one item."""
    headers = [("Content-Type", "application/json"), ("Accept", "application/json")]
    if api_key:
        headers.append(("Authorization", f"Bearer {api_key}"))
    payload = {
        "model": model,
        "messages": [
            {"role": "system", "content": system_prompt(max_sentences)},
            {"role": "user", "content": user_message(title=title, source=source, text=item_text(body))},
        ],
        "temperature": 0,
        "max_tokens": MAX_TOKENS,
    }
    return ChatRequest(
        url=f"{base_url.rstrip('/')}/chat/completions",
        headers=tuple(headers),
        payload=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
    )


def parse_reply(body: bytes, *, max_sentences: int) -> str:
    """The summary in a chat completions reply: ``choices[0].message.content``, as plain sentences.

    Raises LlmError when the body is not JSON, lacks the field, or holds an
    empty, overlong or unfinished text.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise LlmError("the reply is not valid JSON") from None
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise LlmError("the reply has no choices[0].message.content") from None
    if not isinstance(content, str):
        raise LlmError("choices[0].message.content in the reply is not text")
    text = _PREAMBLE.sub("", " ".join(plain_text(content).split()))
    if not text:
        raise LlmError("the reply is empty")
    if len(text) > MAX_REPLY_CHARS:
        raise LlmError(f"the reply is too long for a summary ({len(text)} characters)")
    summary = clip_sentences(text, max_sentences)
    if not summary:
        raise LlmError("the reply holds no complete sentence")
    return summary


def _error_detail(body: bytes) -> str:
    """The message of an OpenAI-style error body, if there is one."""
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        return ""
    return f": {' '.join(str(message).split())[:200]}" if message else ""


class ChatClient:
    """Sends summary requests to one endpoint and model; ``summarize`` returns text or raises LlmError."""

    def __init__(self, *, base_url: str, model: str, api_key: str | None, timeout: float, max_sentences: int):
        self.base_url = base_url
        self.model = model
        self.timeout = timeout
        self.max_sentences = max_sentences
        self._api_key = api_key
        self._http = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False)

    def request_for(self, *, title: str, source: str, body: str) -> ChatRequest:
        return build_request(
            base_url=self.base_url,
            model=self.model,
            title=title,
            source=source,
            body=body,
            max_sentences=self.max_sentences,
            api_key=self._api_key,
        )

    def summarize(self, *, title: str, source: str, body: str) -> str:
        request = self.request_for(title=title, source=source, body=body)
        try:
            with self._http.stream("POST", request.url, content=request.payload, headers=list(request.headers)) as r:
                chunks: list[bytes] = []
                size = 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise LlmError(f"the reply is larger than {MAX_RESPONSE_BYTES} bytes")
                    chunks.append(chunk)
                status, reason = r.status_code, r.reason_phrase
        except httpx.TimeoutException:
            raise LlmError(f"no reply within {self.timeout:g} seconds (summarize.timeout)") from None
        except httpx.ConnectError as exc:
            text = str(exc)
            raise LlmError(
                f"cannot connect to {self.base_url}: {'connection refused' if 'refused' in text.lower() else text}"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise LlmError(f"request to {self.base_url} failed: {exc or type(exc).__name__}") from None
        body_bytes = b"".join(chunks)
        if status != 200:
            raise LlmError(f"HTTP {status} {reason}{_error_detail(body_bytes)}".rstrip())
        return parse_reply(body_bytes, max_sentences=self.max_sentences)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
