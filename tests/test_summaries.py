"""Summaries: extractive ones for items and events, and model-written ones through a real local
chat completions server (a ThreadingHTTPServer on 127.0.0.1 that records every request)."""

from __future__ import annotations

import http.server
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline.cluster import headline_of
from pipeline.config import ConfigError, load_config
from pipeline.digest import digest_step
from pipeline.llm import LlmError, build_request, parse_reply
from pipeline.models import StoredItem
from pipeline.store import Store
from pipeline.summarize import describe, summarize, summarize_event
from pipeline.summarizer import Summarizer

from .conftest import ROOT, run_cli
from .digest_helpers import NOW, _set_keys, digest_settings, load, seeded_store

KEY_ENV = "PIPELINE_TEST_LLM_KEY"
MODEL = "digest-test-model"
DIGEST = Path("daily") / "2026-04-13.md"
# Sentence ends as a reader sees them: a full stop (or ! ?) and a space before a capital or digit.
SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"'”’)]*\s+(?=[\"'“‘(]?[A-Z0-9])")
KIND_LINE = re.compile(r"(An?) [\w -]+ from .+?, a tier-[123] source\.")


def sentence_count(text: str) -> int:
    from pipeline.summarize import split_sentences

    return len([s for s in split_sentences(text) if s.strip()])


# --- a real chat completions server ---------------------------------------------


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict


@dataclass
class ChatServer:
    """Answers POST /v1/chat/completions as ``mode`` says: ok, error500, not-json or slow."""

    mode: str = "ok"
    delay: float = 0.0
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def reply(self, handler: http.server.BaseHTTPRequestHandler, n: int) -> None:
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.mode == "error500":
            data, status = json.dumps({"error": {"message": "the model is not loaded"}}).encode(), 500
        elif self.mode == "not-json":
            data, status = b"<html>this is not json {", 200
        else:
            content = f"Summarized by the test model, request {n}. It is one of the stories of the day."
            data = json.dumps({
                "id": f"chatcmpl-{n}",
                "object": "chat.completion",
                "model": MODEL,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
            }).encode()
            status = 200
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server_state = ChatServer()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"unreadable": raw.decode("utf-8", "replace")}
            with lock:
                server_state.requests.append(Recorded("POST", self.path, dict(self.headers.items()), body))
                n = len(server_state.requests)
            try:
                server_state.reply(self, n)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the timeout test)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    server_state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield server_state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def warnings_seen() -> Iterator[list[str]]:
    """Warning lines of the summarizer, whatever the logging set-up of the session."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    logger = logging.getLogger("pipeline.summarizer")
    level = logger.level
    logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def llm_config(tmp_path: Path, **keys: object) -> Path:
    """The project's config in tmp_path with [summarize] keys set (TOML literals from Python values)."""
    path = digest_settings(tmp_path)
    literal = {k: json.dumps(v) if not isinstance(v, bool) else str(v).lower() for k, v in keys.items()}
    path.write_text(_set_keys(path.read_text(encoding="utf-8"), "\n[summarize]\n", literal), encoding="utf-8")
    return path


def on(server: ChatServer, **extra: object) -> dict[str, object]:
    return {"llm": True, "base_url": server.url, "model": MODEL, "api_key_env": KEY_ENV, **extra}


@pytest.fixture(scope="module")
def extractive_digest(tmp_path_factory) -> str:
    """The seeds' daily digest with summarize.llm off, to compare the fallbacks with."""
    config = load(llm_config(tmp_path_factory.mktemp("extractive")))
    with seeded_store(config) as store:
        digest_step(store, config, NOW)
    return (config.digest.output_dir / DIGEST).read_text()


def story_summaries(markdown: str) -> list[str]:
    lines = markdown.splitlines()
    return [lines[i + 1] for i, line in enumerate(lines) if line.startswith("### ")]


# --- extractive summaries ---------------------------------------------------------


def _item(item_id: str, source: str, tier: int, body: str, *, kind: str = "news", hours: int = 0,
          name: str | None = None) -> StoredItem:
    when = datetime(2026, 4, 10, 9, tzinfo=timezone.utc) + timedelta(hours=hours)
    return StoredItem(
        id=item_id, source_id=source, source_name=name or source.title(), tier=tier, url=None,
        title=f"Title of {item_id}", author=None, published=when, first_seen=when, body=body,
        content_hash=f"hash-{item_id}", kind=kind, event_id="ev-1",
    )


BODY = (
    "The regulator fined the company two million euros on Tuesday. It said the model was trained on data "
    "collected without consent. The company plans to appeal the decision in court. A hearing is set for June."
)


def test_item_summaries_from_the_seeds_are_short_and_name_kind_source_and_tier(tmp_path: Path):
    config = load(digest_settings(tmp_path))
    with seeded_store(config) as store:
        items = store.items()
    assert len(items) >= 30
    for item in items:
        text = summarize(item)
        tail = describe(item.kind, item.source_name, item.tier)
        assert text.endswith(tail), text
        assert f"from {item.source_name}, a tier-{item.tier} source." in text
        assert 1 <= sentence_count(text) <= 3, text


def test_item_summary_skips_boilerplate_and_keeps_two_sentences():
    item = _item("a", "patchline", 3, "Unsubscribe or manage your preferences for this newsletter.\n\n" + BODY)
    assert summarize(item) == (
        "The regulator fined the company two million euros on Tuesday. It said the model was trained on data "
        "collected without consent. A news report from Patchline, a tier-3 source."
    )
    assert summarize(_item("b", "patchline", 3, "")) == "A news report from Patchline, a tier-3 source."
    assert summarize(_item("c", "labs", 1, BODY, kind="announcement")).endswith(
        "An announcement from Labs, a tier-1 source."
    )


def test_event_summary_names_the_other_sources_and_their_tiers():
    head = _item("h", "labs", 1, BODY, kind="announcement", name="Meridian Labs")
    members = [
        _item("x", "ledger", 2, "Another write-up of the same fine, long enough to count as a sentence."),
        head,
        _item("y", "wire", 3, "A third report of the fine, also long enough to count as a sentence."),
        _item("z", "wire", 3, "The same outlet again: it counts once as a source.", hours=2),
    ]
    text = summarize_event(members)
    assert text == (
        "The regulator fined the company two million euros on Tuesday. "
        "An announcement from Meridian Labs, a tier-1 source. "
        "Two more sources covered it, at tiers 2 and 3."
    )
    assert sentence_count(text) == 3
    # one other source; several at one tier
    assert summarize_event([head, members[0]]).endswith("One more source covered it, at tier 2.")
    assert summarize_event([head, members[2], _item("w", "other", 3, BODY)]).endswith(
        "Two more sources covered it, both at tier 3."
    )
    # an event of one source reads like its item's summary
    assert summarize_event([head]) == summarize(head)
    assert summarize_event([head, _item("h2", "labs", 1, BODY, hours=1)]) == summarize(head)


def test_event_summaries_of_the_seeds_are_short_and_name_kind_source_and_tier(tmp_path: Path):
    config = load(digest_settings(tmp_path))
    with seeded_store(config) as store:
        events = store.event_members(r["id"] for r in store.db.query("SELECT id FROM events"))
    assert len(events) >= 20
    several = 0
    for members in events.values():
        head = headline_of(members)
        text = summarize_event(members)
        assert describe(head.kind, head.source_name, head.tier) in text, text
        assert 1 <= sentence_count(text) <= 3, text
        if len({m.source_id for m in members}) > 1:
            several += 1
            assert re.search(r" more sources? covered it, (at|both at|all at) tiers? [123]", text), text
        else:
            assert text == summarize(head)
    assert several >= 3


# --- the request and the reply, as pure functions -------------------------------------


def test_request_shape_is_chat_completions():
    request = build_request(base_url="http://127.0.0.1:9/v1/", model="m1", title="A title", source="Patchline",
                            body="Some **bold** text.\n\n" + "word " * 2000, max_sentences=2, api_key="k-1")
    assert request.url == "http://127.0.0.1:9/v1/chat/completions"
    assert ("Authorization", "Bearer k-1") in request.headers
    payload = json.loads(request.payload)
    assert payload["model"] == "m1" and payload["temperature"] == 0 and 100 <= payload["max_tokens"] <= 300
    system, user = payload["messages"]
    assert system["role"] == "system" and "one or two plain sentences" in system["content"]
    assert user["role"] == "user" and "A title" in user["content"] and "Patchline" in user["content"]
    assert "Some bold text." in user["content"] and len(user["content"]) < 5000  # the text is trimmed
    no_key = build_request(base_url="http://h/v1", model="m", title="t", source="s", body="b", max_sentences=1,
                           api_key=None)
    assert all(name != "Authorization" for name, _ in no_key.headers)


def _reply(content: object) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


def test_replies_are_read_or_refused_with_a_reason():
    assert parse_reply(_reply("  The board approved the plan.  It starts in May. A third one.  "),
                       max_sentences=2) == "The board approved the plan. It starts in May."
    assert parse_reply(_reply("The board approved the plan. It was cut off mid"), max_sentences=3) == (
        "The board approved the plan."
    )
    for body, reason in [
        (b"not json", "not valid JSON"),
        (json.dumps({"choices": []}).encode(), "no choices[0].message.content"),
        (json.dumps({"error": "x"}).encode(), "no choices[0].message.content"),
        (_reply(None), "not text"),
        (_reply("   "), "empty"),
        (_reply("Long. " * 400), "too long"),
        (_reply("no full stop at all"), "no complete sentence"),
    ]:
        with pytest.raises(LlmError, match=re.escape(reason)):
            parse_reply(body, max_sentences=2)


# --- the model path through a real server -----------------------------------------------


def test_llm_is_off_by_default_and_a_full_run_sends_nothing(tmp_path: Path, chat_server: ChatServer):
    shipped = load_config(ROOT / "config.toml").summarize
    assert shipped.llm is False
    assert not Summarizer.from_config(shipped, cache=None, now=NOW).uses_llm  # type: ignore[arg-type]
    # even with an endpoint and a model configured, llm = false sends nothing
    path = llm_config(tmp_path, llm=False, base_url=chat_server.url, model=MODEL)
    result = run_cli("--now", NOW.isoformat(), "run", config=path)
    assert result.code == 0, result.err
    assert re.search(r"^digest: .*\d+ stories", result.out, re.M), result.out
    assert chat_server.requests == []
    digest = (tmp_path / "digests" / DIGEST).read_text()
    assert "test model" not in digest


def test_run_asks_the_endpoint_uses_the_reply_and_a_second_run_uses_the_cache(
    tmp_path: Path, chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(KEY_ENV, "sk-local-test-123")
    path = llm_config(tmp_path, **on(chat_server))
    assert "sk-local-test-123" not in path.read_text()  # the key is only in the environment
    first = run_cli("--now", NOW.isoformat(), "run", config=path)
    assert first.code == 0, first.err
    requests = list(chat_server.requests)
    assert requests
    for r in requests:
        assert (r.method, r.path) == ("POST", "/v1/chat/completions")
        assert r.headers["Authorization"] == "Bearer sk-local-test-123"
        assert r.body["model"] == MODEL and r.body["temperature"] == 0
        assert [m["role"] for m in r.body["messages"]] == ["system", "user"]
        assert r.body["messages"][1]["content"].startswith("Title: ")
    digest_path = tmp_path / "digests" / DIGEST
    digest = digest_path.read_text()
    summaries = story_summaries(digest)
    # one request per headline item: the digest's stories, then the pages' other events; never one twice
    assert len(summaries) <= len(requests) <= 50
    assert len({r.body["messages"][1]["content"] for r in requests}) == len(requests)
    for line in summaries:
        assert re.fullmatch(r"Summarized by the test model, request \d+\. It is one of the stories of the day\. "
                            + KIND_LINE.pattern, line), line
    event_page = next((tmp_path / "digests" / "events").glob("*.md")).read_text()
    assert "Summarized by the test model" in event_page
    with Store(tmp_path / "pipeline.db") as store:
        cached = store._rows("SELECT content_hash, model, summary FROM summaries")
    assert len(cached) == len(requests) and {c["model"] for c in cached} == {MODEL}

    before = {p: p.read_bytes() for p in (tmp_path / "digests").rglob("*") if p.is_file()}
    second = run_cli("--now", NOW.isoformat(), "run", config=path)
    assert second.code == 0, second.err
    assert len(chat_server.requests) == len(requests)  # nothing asked again
    after = {p: p.read_bytes() for p in (tmp_path / "digests").rglob("*") if p.is_file()}
    assert after == before and digest_path.read_bytes() == digest.encode()


def test_the_budget_caps_requests_per_run(tmp_path: Path, chat_server: ChatServer, warnings_seen: list[str],
                                          extractive_digest: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    config = load(llm_config(tmp_path, **on(chat_server, max_per_run=2)))
    with seeded_store(config) as store:
        result = digest_step(store, config, NOW)
    assert result.counts["stories"] >= 20
    assert len(chat_server.requests) == 2
    assert all("Authorization" not in r.headers for r in chat_server.requests)  # no key: no header
    summaries = story_summaries((config.digest.output_dir / DIGEST).read_text())
    from_model = [s for s in summaries if s.startswith("Summarized by the test model")]
    assert len(from_model) == 2
    extractive = set(story_summaries(extractive_digest))
    assert all(s in extractive for s in summaries if s not in from_model)
    budget_lines = [w for w in warnings_seen if "budget" in w]
    assert len(budget_lines) == 1 and "summarize.max_per_run" in budget_lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("error500", "HTTP 500 Internal Server Error: the model is not loaded"),
        ("not-json", "the reply is not valid JSON"),
        ("slow", "no reply within 0.3 seconds"),
        ("refused", "connection refused"),
    ],
)
def test_any_failure_falls_back_to_the_extractive_summary(
    tmp_path: Path, chat_server: ChatServer, warnings_seen: list[str], extractive_digest: str, mode: str, reason: str
):
    chat_server.mode, chat_server.delay = mode, 2.0
    keys = on(chat_server, timeout=0.3)
    if mode == "refused":
        keys["base_url"] = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    config = load(llm_config(tmp_path, **keys))
    started = time.monotonic()
    with seeded_store(config) as store:
        result = digest_step(store, config, NOW)  # never raises
        assert store._rows("SELECT * FROM summaries") == []  # failures are not cached
    assert result.counts["written"] == 1 and not result.problems
    assert (config.digest.output_dir / DIGEST).read_text() == extractive_digest
    # three failures in a row, then no more requests for the rest of the run
    assert len(chat_server.requests) == (0 if mode == "refused" else 3)
    failures = [w for w in warnings_seen if "failed:" in w]
    assert len(failures) == 3
    for line in failures:
        assert re.match(r"LLM summary of item [0-9a-f]{12} \('.+'\) failed: ", line), line
        assert reason in line and "using the extractive summary" in line
    assert any("3 requests failed in a row" in w for w in warnings_seen)
    assert time.monotonic() - started < 20


def test_llm_without_base_url_or_model_is_a_config_error(tmp_path: Path):
    path = llm_config(tmp_path, llm=True)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        "summarize.base_url: required when summarize.llm is true",
        "summarize.model: required when summarize.llm is true",
    ]
    path = llm_config(tmp_path, llm=True, model=MODEL)
    result = run_cli("run", config=path)
    assert result.code == 1 and "Traceback" not in result.err
    assert result.err.strip().splitlines() == [
        f"Error: {path}: summarize.base_url: required when summarize.llm is true"
    ]
    assert not (tmp_path / "pipeline.db").exists()


def test_summarize_values_are_checked_by_dotted_key(tmp_path: Path):
    path = llm_config(tmp_path, base_url="localhost:8080", max_sentences=5, timeout=0, max_per_run=-1,
                      api_key_env="not a name")
    path.write_text(path.read_text().replace("max_sentences = 5", "max_sentences = 5\nmodle = \"x\""))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert sorted(info.value.problems) == sorted([
        "summarize.modle: unknown key",
        "summarize.base_url: must be an absolute http(s) URL, for example http://localhost:8080/v1",
        "summarize.api_key_env: must be the name of an environment variable",
        "summarize.max_per_run: must be 0 or more",
        "summarize.timeout: must be greater than 0",
        "summarize.max_sentences: must be 1, 2 or 3",
    ])


def test_sentences_are_not_cut_after_abbreviations_or_initials() -> None:
    from pipeline.summarize import split_sentences

    text = "Anthropic v. Department of War is before the court. The U.S. Commerce Department acted. It ended."
    assert split_sentences(text) == [
        "Anthropic v. Department of War is before the court.",
        "The U.S. Commerce Department acted.",
        "It ended.",
    ]
