"""E-mail delivery against a real SMTP server (aiosmtpd) on 127.0.0.1, with STARTTLS or SSL and a login."""

from __future__ import annotations

import email
import socket
import ssl
from datetime import timedelta
from email import policy
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from pipeline.deliver import deliver_digests
from pipeline.digest import digest_step
from pipeline.store import Store

from .conftest import run_cli
from .digest_helpers import NOW, SITE_URL, digest_settings, load, seeded_store, snapshot

LATER = NOW + timedelta(days=1, hours=1)  # 14 April 07:00: the 13 April digest has closed

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

trustme = pytest.importorskip("trustme")

USER, PASSWORD = "digest-bot", "s3cret-pass"
RECIPIENTS = ("alice@example.org", "bob@example.net")


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refuse: set[str] = set()
        self.hang_up_on: set[str] = set()  # take the message, then drop the line before answering

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return "550 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        if self.hang_up_on & set(envelope.rcpt_tos):
            server.transport.close()
        return "250 Message accepted"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    authority = trustme.CA()
    folder = tmp_path_factory.mktemp("ca")
    authority.cert_pem.write_to_path(str(folder / "ca.pem"))
    return authority, folder / "ca.pem"


def _server_context(authority) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(params=["starttls", "ssl"])
def smtp_server(request, ca):
    authority, _ = ca
    inbox = Inbox()
    port = _free_port()
    if request.param == "starttls":
        controller = aiosmtpd_controller.Controller(
            inbox, hostname="127.0.0.1", port=port, tls_context=_server_context(authority), require_starttls=True,
            authenticator=_authenticator, auth_require_tls=True,
        )
    else:
        controller = aiosmtpd_controller.Controller(
            inbox, hostname="127.0.0.1", port=port, ssl_context=_server_context(authority),
            authenticator=_authenticator, auth_require_tls=False,
        )
    controller.start()
    try:
        yield request.param, port, inbox
    finally:
        controller.stop()


def _config(tmp_path: Path, security: str, port: int, ca_file: Path, **extra: str):
    email_settings = {
        "to": "[" + ", ".join(f'"{r}"' for r in RECIPIENTS) + "]",
        "sender": '"digest@example.org"',
        "host": '"127.0.0.1"',
        "port": str(port),
        "security": f'"{security}"',
        "username": f'"{USER}"',
        "password_env": '"TEST_SMTP_PASSWORD"',
        "ca_file": f'"{ca_file}"',
        "timeout": "10.0",
        **extra,
    }
    return digest_settings(tmp_path, {"site_url": f'"{SITE_URL}"'}, email_settings)


def test_round_trip_through_a_real_smtp_server(tmp_path: Path, smtp_server, ca, monkeypatch):
    security, port, inbox = smtp_server
    config_path = _config(tmp_path, security, port, ca[1])
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    config = load(config_path)
    with seeded_store(config) as store:
        digest_step(store, config, NOW)
    assert inbox.messages == []  # on_digest is off: digest writes, deliver sends
    early = run_cli("--now", NOW.isoformat(), "deliver", config=config_path)
    assert early.code == 0 and early.out.strip() == "deliver: nothing to do", early.out + early.err
    assert inbox.messages == []  # the day is not over: its digest may still grow
    result = run_cli("--now", LATER.isoformat(), "deliver", config=config_path)
    assert result.code == 0, result.err
    assert result.out.strip() == "deliver: 2 sent"
    assert sorted(rcpt for _, rcpts, _ in inbox.messages for rcpt in rcpts) == sorted(RECIPIENTS)
    for mail_from, rcpts, raw in inbox.messages:
        msg = email.message_from_bytes(raw, policy=policy.default)
        assert mail_from == "digest@example.org" and msg["To"] == rcpts[0]
        assert msg["Subject"].startswith("Data Points: ") and "; " in msg["Subject"]
        assert msg["From"] == "Data Points <digest@example.org>"
        assert msg["Message-ID"].startswith("<daily-2026-04-13.") and msg["Date"]
        assert msg.get_content_type() == "multipart/alternative"
        text_part, html_part = msg.iter_parts()
        assert (text_part.get_content_type(), html_part.get_content_type()) == ("text/plain", "text/html")
        text, html = text_part.get_content(), html_part.get_content()
        assert "Introducing Meridian Open 2" in text and "Introducing Meridian Open 2" in html
        assert "https://meridianlabs.example/blog/introducing-meridian-open-2" in text
        soup = BeautifulSoup(html, "html.parser")
        hrefs = [a["href"] for a in soup.find_all("a")]
        assert "https://meridianlabs.example/blog/introducing-meridian-open-2" in hrefs
        assert any(h.startswith(f"{SITE_URL}events/ev-") for h in hrefs)
        assert all(h.startswith(("https://", "http://")) for h in hrefs)  # no relative links in mail
        assert soup.find("h3").get("style")  # CSS inlined
    # a second run sends nothing: every address already has it; asking for it by date says so
    again = run_cli("--now", LATER.isoformat(), "deliver", config=config_path)
    assert again.code == 0 and len(inbox.messages) == 2 and again.out.strip() == "deliver: nothing to do"
    named = run_cli("--now", LATER.isoformat(), "deliver", "--date", "2026-04-13", config=config_path)
    assert named.code == 0 and len(inbox.messages) == 2 and named.out.strip() == "deliver: 2 already sent"
    with Store(tmp_path / "pipeline.db") as store:
        rows = store.deliveries("daily:2026-04-13")
    assert [(r["address"], r["status"], r["attempts"]) for r in rows] == [(a, "sent", 1) for a in sorted(RECIPIENTS)]


@pytest.mark.parametrize("smtp_server", ["starttls"], indirect=True)
def test_a_crash_between_sending_and_sent_is_not_sent_again_unless_asked(tmp_path: Path, smtp_server, ca, monkeypatch):
    _, port, inbox = smtp_server
    config_path = _config(tmp_path, "starttls", port, ca[1])
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    config = load(config_path)
    with seeded_store(config) as store:
        digest_step(store, config, NOW)
        # what a run that died after handing alice's message to the server leaves behind
        store.mark_delivery("daily:2026-04-13", "alice@example.org", status="sending", message_id="<x>", now=NOW)
        result = deliver_digests(store, config, LATER)
        assert result.counts == {"sent": 1, "unknown": 1}
        assert "alice@example.org" in str(result.problems[0]) and "--resend-unknown" in str(result.problems[0])
        assert [rcpts for _, rcpts, _ in inbox.messages] == [["bob@example.net"]]
        resent = deliver_digests(store, config, LATER, resend_unknown=True)
        assert resent.counts == {"sent": 1, "already sent": 1}
        assert {r["address"]: r["status"] for r in store.deliveries()} == {a: "sent" for a in RECIPIENTS}


@pytest.mark.parametrize("smtp_server", ["starttls"], indirect=True)
def test_refusals_and_bad_logins_are_retried_later_and_reported(tmp_path: Path, smtp_server, ca, monkeypatch):
    _, port, inbox = smtp_server
    # smtplib tries the next login mechanism after a refusal, which aiosmtpd leaves unanswered: a short timeout
    config = load(_config(tmp_path, "starttls", port, ca[1], timeout="2.0"))
    with seeded_store(config) as store:
        digest_step(store, config, NOW)
        monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
        bad_login = deliver_digests(store, config, LATER)
        assert bad_login.counts == {"failed": 2} and "smtp 127.0.0.1" in str(bad_login.problems[0])
        assert inbox.messages == []
        monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
        inbox.refuse = {"bob@example.net"}
        partly = deliver_digests(store, config, LATER)
        assert partly.counts == {"sent": 1, "failed": 1} and "bob@example.net" in str(partly.problems[0])
        inbox.refuse = set()
        last = deliver_digests(store, config, LATER)
        assert last.counts == {"sent": 1, "already sent": 1}
        assert sorted(r for _, rcpts, _ in inbox.messages for r in rcpts) == sorted(RECIPIENTS)
        statuses = {r["address"]: (r["status"], r["attempts"]) for r in store.deliveries()}
        assert statuses == {"alice@example.org": ("sent", 2), "bob@example.net": ("sent", 3)}


@pytest.mark.parametrize("smtp_server", ["starttls"], indirect=True)
def test_an_open_digest_is_mailed_by_the_first_run_after_its_day_ends(tmp_path: Path, smtp_server, ca, monkeypatch):
    _, port, inbox = smtp_server
    config_path = _config(tmp_path, "starttls", port, ca[1], on_digest="true")
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    seeded_store(load(config_path)).close()
    asked = run_cli("--now", NOW.isoformat(), "digest", "--deliver", config=config_path)
    assert asked.code == 0, asked.err
    assert inbox.messages == [] and "1 email still open" in asked.out
    assert ("WARNING: the daily digest 2026-04-13 is still open until 2026-04-14 00:00 UTC: not mailed now; "
            "the first delivery after that mails it") in asked.err
    named = run_cli("--now", NOW.isoformat(), "deliver", "--date", "2026-04-13", config=config_path)
    assert named.code == 0 and named.out.strip() == "deliver: 1 still open" and inbox.messages == []
    assert "WARNING: the daily digest 2026-04-13 is still open until 2026-04-14 00:00 UTC" in named.err
    missing = run_cli("--now", NOW.isoformat(), "deliver", "--date", "2026-04-01", config=config_path)
    assert missing.code == 1
    assert missing.err.strip() == "Error: no daily digest 2026-04-01; write it first with pipeline digest"
    # on_digest: the first run after midnight writes nothing new for the 14th, and mails the 13th
    after = run_cli("--now", (NOW + timedelta(hours=19)).isoformat(), "digest", config=config_path)
    assert after.code == 0, after.err
    assert len(inbox.messages) == 2 and "2 email sent" in after.out
    assert sorted(r for _, rcpts, _ in inbox.messages for r in rcpts) == sorted(RECIPIENTS)
    # later runs do not mail it again
    assert run_cli("--now", (NOW + timedelta(hours=26)).isoformat(), "digest", config=config_path).code == 0
    assert len(inbox.messages) == 2
    with Store(tmp_path / "pipeline.db") as store:
        assert {(r["digest_id"], r["status"]) for r in store.deliveries()} == {("daily:2026-04-13", "sent")}


def test_no_recipients_means_no_mail_and_a_clear_message(tmp_path: Path):
    config_path = digest_settings(tmp_path)
    config = load(config_path)
    with seeded_store(config) as store:
        digest_step(store, config, NOW)
    result = run_cli("--now", NOW.isoformat(), "deliver", config=config_path)
    assert result.code == 3 and "digest.email.to: no recipients configured" in result.err


@pytest.mark.parametrize("smtp_server", ["starttls"], indirect=True)
def test_a_line_dropped_after_the_message_went_out_is_never_repeated(tmp_path: Path, smtp_server, ca, monkeypatch):
    _, port, inbox = smtp_server
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    config = load(_config(tmp_path, "starttls", port, ca[1]))
    inbox.hang_up_on = {"alice@example.org"}
    with seeded_store(config) as store:
        digest_step(store, config, NOW)
        first = deliver_digests(store, config, LATER)
        assert first.counts == {"unknown": 1} and "connection lost" in str(first.problems[0])
        assert [r for _, r, _ in inbox.messages] == [["alice@example.org"]]  # the server did get it
        inbox.hang_up_on = set()
        second = deliver_digests(store, config, LATER)
        assert second.counts == {"sent": 1, "unknown": 1}
        assert sorted(r for _, rcpts, _ in inbox.messages for r in rcpts) == sorted(RECIPIENTS)  # alice once
        assert {r["address"]: r["status"] for r in store.deliveries()} == {
            "alice@example.org": "sending", "bob@example.net": "sent"}


def _arrive(store: Store, config, folder: Path, name: str, title: str, when) -> None:
    """A new article, first seen at ``when``, taken in, tagged and clustered as a run would."""
    from pipeline.cluster import cluster_step
    from pipeline.ingest import ingest_paths
    from pipeline.tag import tag_step

    path = folder / f"{name}.md"
    path.write_text(f"# {title}\n\n{title}, and what it means for everyone who follows the field closely.\n")
    ingest_paths(store, config, [path], when)
    tag_step(store, config, when)
    cluster_step(store, config, when)


def _received(inbox: Inbox) -> list[tuple[str, str]]:
    """(text part, Message-ID) of each message alice got, in order."""
    out = []
    for _, rcpts, raw in inbox.messages:
        if rcpts == ["alice@example.org"]:
            msg = email.message_from_bytes(raw, policy=policy.default)
            out.append((next(msg.iter_parts()).get_content(), msg["Message-ID"]))
    return out


@pytest.mark.parametrize("smtp_server", ["starttls"], indirect=True)
def test_items_that_arrive_after_a_digest_was_mailed_are_mailed_with_the_next_one(tmp_path: Path, smtp_server, ca,
                                                                                  monkeypatch):
    _, port, inbox = smtp_server
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    config = load(_config(tmp_path, "starttls", port, ca[1]))
    out = config.digest.output_dir
    late = tmp_path / "late"
    late.mkdir()
    with seeded_store(config) as store:
        digest_step(store, config, NOW)  # 13 April so far
        early = digest_step(store, config, NOW + timedelta(hours=3), deliver=True)
        assert early.counts["email still open"] == 1 and inbox.messages == []
        _arrive(store, config, late, "afternoon", "Afternoon story about open-weight model licences",
                NOW + timedelta(hours=9))
        digest_step(store, config, NOW + timedelta(hours=9))  # the 13th so far, with the afternoon story

        # the next morning: the digest of the day that ended, mailed
        morning = digest_step(store, config, LATER, last=True, deliver=True)
        assert morning.paths == (str(out / "daily" / "2026-04-13.md"),) and morning.counts["email sent"] == 2
        ((first, _),) = _received(inbox)
        assert "Afternoon story about open-weight model licences" in first and "Introducing Meridian Open 2" in first

        # a story that arrives after the mailing goes into the next day's digest, never into the mailed one
        _arrive(store, config, late, "morning", "Morning story about export controls on chips",
                LATER + timedelta(hours=1))
        mailed = snapshot(out / "daily")
        today = digest_step(store, config, LATER + timedelta(hours=1))
        again = digest_step(store, config, LATER + timedelta(hours=1), date="2026-04-13")
        assert today.paths == (str(out / "daily" / "2026-04-14.md"),) and today.counts["stories"] == 1
        assert again.counts == {"written": 0, "already mailed": 1}  # frozen: never rendered again
        assert {k: v for k, v in snapshot(out / "daily").items() if "04-13" in k} == mailed
        with Store(config.store.path) as check:
            held = {r["digest_id"]: r["n"] for r in check.db.query(
                "SELECT digest_id, COUNT(*) AS n FROM digest_items GROUP BY digest_id")}
        assert held["daily:2026-04-13"] >= 27 and held["daily:2026-04-14"] == 1

        # the morning after: the 14th is mailed with that story
        digest_step(store, config, LATER + timedelta(days=1), last=True, deliver=True)
    texts = [text for text, _ in _received(inbox)]
    assert len(texts) == 2 and len({mid for _, mid in _received(inbox)}) == 2
    assert "Morning story about export controls on chips" in texts[1]
    assert "Morning story about export controls on chips" not in texts[0]
    assert "Afternoon story" not in texts[1] and "Introducing Meridian Open 2" not in texts[1]


@pytest.mark.parametrize("smtp_server", ["starttls"], indirect=True)
def test_a_scheduled_job_mails_the_day_that_ended_and_the_next_job_retries_a_failure(tmp_path: Path, smtp_server, ca,
                                                                                    monkeypatch):
    from pipeline import schedule as sch
    from .test_schedule import set_keys

    _, port, inbox = smtp_server
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    path = set_keys(_config(tmp_path, "starttls", port, ca[1]), "schedule", deliver="true", daily='"0 7 * * *"',
                    weekly='""', fetch="false", ingest="false")
    config = load(path)
    seeded_store(config).close()  # items first seen on 13 April, 06:00
    update, daily = sch.job_specs(config, start=NOW)
    inbox.refuse = {"bob@example.net"}
    fired = NOW.replace(day=14, hour=7)  # the daily job on the 14th makes and mails the digest of the 13th
    assert sch.run_job(config, daily.id, sch.digest_work(daily, config), clock=lambda: fired) == "partial"
    assert [r for _, r, _ in inbox.messages] == [["alice@example.org"]]
    inbox.refuse = set()
    later = fired + timedelta(hours=1)
    assert sch.run_job(config, update.id, sch.update_work(config, [update, daily]), clock=lambda: later) == "ok"
    assert sorted(r for _, rcpts, _ in inbox.messages for r in rcpts) == sorted(RECIPIENTS)
    with Store(config.store.path) as store:
        assert set(store.digest_dates("daily")) == {"2026-04-13"}
        assert {r["address"]: (r["status"], r["attempts"]) for r in store.deliveries("daily:2026-04-13")} == {
            "alice@example.org": ("sent", 1), "bob@example.net": ("sent", 2)}
        assert store.last_run("update")["counts"]["deliver.sent"] == 1
    # a third job finds nothing left to send
    sch.run_job(config, update.id, sch.update_work(config, [update, daily]), clock=lambda: later + timedelta(hours=1))
    assert len(inbox.messages) == 2
