"""Reading newsletters from IMAP mailboxes, against a real Dovecot server on 127.0.0.1.

The module starts Dovecot itself (``dovecot -F -c CONF`` with a config written
into a temporary folder): one server without TLS, and one with a throwaway
certificate from trustme for the SSL and STARTTLS tests. Two users share one
Maildir: ``tester`` puts messages in with APPEND and looks at their flags,
``reader`` is the account pipeline reads, so Dovecot's log line for each of
reader's sessions (``body_count=N``) tells how many messages pipeline fetched.

Without the ``dovecot`` binary the server tests skip, unless
PIPELINE_REQUIRE_IMAP=1 is set (as CI does), which makes them fail instead.
"""

from __future__ import annotations

import grp
import imaplib
import itertools
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from pipeline.config import ConfigError, ImapConfig, load_config
from pipeline.imap import encode_folder, fetch_mailboxes, message_url, parse_fetch_body, uids_after
from pipeline.models import StepResult
from pipeline.store import Store

from .conftest import ROOT, SEEDS, run_cli, write_config

T1 = datetime(2026, 4, 13, 8, 0, tzinfo=timezone.utc)
TESTER = "tester"
READER = "reader"
VETERAN = "veteran"  # sees the same mail as reader, through a server that lacks UIDPLUS
PASSWORD = "letmein-2026"
DOVECOT = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")


# --- the server -------------------------------------------------------------------


def _need_dovecot() -> str:
    if DOVECOT:
        return DOVECOT
    reason = "dovecot is not installed (apt-get install dovecot-imapd); the IMAP tests need a real server"
    if os.environ.get("PIPELINE_REQUIRE_IMAP") == "1":
        pytest.fail(f"{reason}, and PIPELINE_REQUIRE_IMAP=1 asks for them")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Dovecot:
    root: Path
    port: int  # plain IMAP, with STARTTLS when the server has a certificate
    ssl_port: int | None  # IMAP over TLS from the start
    ca_file: Path | None
    process: subprocess.Popen[bytes]

    @property
    def log(self) -> Path:
        return self.root / "dovecot.log"

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def client(self, user: str = TESTER) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        conn.login(user, PASSWORD)
        return conn

    def sessions(self, user: str, since: int, expected: int = 1) -> list[str]:
        """Dovecot's log lines of the IMAP sessions of ``user`` that ended after offset ``since``."""
        deadline = time.monotonic() + 5
        while True:
            text = self.log.read_bytes()[since:].decode("utf-8", "replace")
            ended = [line for line in text.splitlines() if f"imap({user})" in line and "Disconnected" in line]
            if len(ended) >= expected or time.monotonic() > deadline:
                return ended

    def bodies_fetched(self, since: int) -> int:
        """How many message bodies reader's sessions since ``since`` fetched, by Dovecot's count."""
        return sum(int(n) for line in self.sessions(READER, since) for n in re.findall(r"body_count=(\d+)", line))


def _start_dovecot(tls: bool) -> Iterator[Dovecot]:
    binary = _need_dovecot()
    root = Path(tempfile.mkdtemp(prefix="pipeline-dovecot-"))
    root.chmod(0o755)  # the unprivileged Dovecot processes walk into it
    # Dovecot runs its processes as this user: ourselves, or "nobody" when the tests run as root.
    me = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    group = me.pw_gid
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir()
    if os.geteuid() == 0:
        for sub in ("mail", "home"):
            os.chown(root / sub, me.pw_uid, group)
    # user:password:uid:gid:gecos:home:shell:extra fields; VETERAN's server announces no UIDPLUS
    user = f"{{PLAIN}}{PASSWORD}:{me.pw_uid}:{group}::{root}/home::"
    (root / "passwd").write_text(
        f"{TESTER}:{user}\n{READER}:{user}\n{VETERAN}:{user}userdb_imap_capability=IMAP4rev1\n"
    )
    port = _free_port()
    ssl_port = _free_port() if tls else None
    ca_file = None
    ssl_settings = "ssl = no"
    if tls:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ca_file = root / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        (root / "cert.pem").write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(root / "key.pem"))
        ssl_settings = f"ssl = yes\nssl_cert = <{root}/cert.pem\nssl_key = <{root}/key.pem"
    conf = root / "dovecot.conf"
    conf.write_text(
        f"""
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
instance_name = pipeline-test-{port}
log_path = {root}/dovecot.log
default_login_user = {me.pw_name}
default_internal_user = {me.pw_name}
default_internal_group = {grp.getgrgid(group).gr_name}
first_valid_uid = 1
first_valid_gid = 1
{ssl_settings}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:{root}/mail
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ssl_port or 0}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
""",
        encoding="utf-8",
    )
    process = subprocess.Popen([binary, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    server = Dovecot(root, port, ssl_port, ca_file, process)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                output = (process.stdout.read() if process.stdout else b"").decode("utf-8", "replace")
                log = server.log.read_text(errors="replace") if server.log.exists() else ""
                pytest.fail(f"dovecot exited with {process.returncode}:\n{output}\n{log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"dovecot did not answer on port {port} within 15 s")
                time.sleep(0.02)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    yield from _start_dovecot(tls=False)


@pytest.fixture(scope="module")
def dovecot_tls() -> Iterator[Dovecot]:
    yield from _start_dovecot(tls=True)


_folders = itertools.count(1)


def _new_folder(server: Dovecot) -> str:
    name = f"Newsletters {next(_folders)}"  # a space: the name must be quoted on the wire
    conn = server.client()
    try:
        typ, data = conn.create(encode_folder(name))
        assert typ == "OK", data
    finally:
        conn.logout()
    return name


@pytest.fixture
def folder(dovecot: Dovecot) -> str:
    return _new_folder(dovecot)


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_IMAP_PASSWORD", PASSWORD)


# --- messages on the server --------------------------------------------------------


def newsletter(n: int, title: str, *, extra_header: str | None = None) -> bytes:
    """A one-story issue of Lattice Notes (a [[sources]] entry of the shipped config)."""
    msg = EmailMessage()
    msg["From"] = "Lattice Notes <notes@latticenotes.example>"
    msg["To"] = "reader@inbox.example"
    msg["Subject"] = title
    msg["Date"] = f"Mon, {n % 28 + 1:02d} Mar 2026 07:30:00 +0000"
    msg["Message-ID"] = f"<issue-{n}.notes@latticenotes.example>"
    msg["List-Id"] = "Lattice Notes <notes.latticenotes.example>"
    if extra_header:
        name, value = extra_header.split(": ", 1)
        msg[name] = value
    text = (
        f"{title}\n\nThis week we look at how open-weight model releases are changing the way "
        f"evaluation labs schedule their red-teaming work, and what issue {n} of our survey of "
        "forty labs says about the time between a model card and independent results. Most labs "
        "now publish a dated plan; few keep to it.\n"
    )
    msg.set_content(text)
    msg.add_alternative(
        f'<html><body><p><a href="https://latticenotes.example/issues/{n}">View this issue in your browser</a></p>'
        f"<h1>{title}</h1><p>{text.split(chr(10), 2)[2]}</p><p>Until next week, the Lattice Notes team</p>"
        "</body></html>",
        subtype="html",
    )
    return msg.as_bytes(policy=SMTP)


# Binary bytes and no header: not an e-mail message at all.
BROKEN = b"\x89PNG\r\n\x1a\r\n" + bytes(range(1, 10)) + b"\r\n" + bytes(range(14, 256)) + b"\r\n"


def append(server: Dovecot, folder: str, *messages: bytes) -> list[int]:
    """Put messages into the folder; return their UIDs."""
    conn = server.client()
    uids = []
    try:
        for payload in messages:
            typ, data = conn.append(encode_folder(folder), None, None, payload)
            assert typ == "OK", data
            uids.append(int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1)))  # type: ignore[union-attr]
    finally:
        conn.logout()
    return uids


def flags(server: Dovecot, folder: str) -> dict[int, set[str]]:
    """Every message's flags, by UID (EXAMINE: looking changes nothing)."""
    conn = server.client()
    try:
        typ, data = conn.select(encode_folder(folder), readonly=True)
        assert typ == "OK", data
        if int(data[0]) == 0:
            return {}
        typ, data = conn.uid("FETCH", "1:*", "(FLAGS)")
        assert typ == "OK", data
        out = {}
        for line in data:
            m = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+)", line)
            assert m, line
            uid = int(m.group(1) or m.group(4))
            out[uid] = set((m.group(2) or m.group(3) or b"").decode().split()) - {"\\Recent"}  # per session
        return out
    finally:
        conn.logout()


# --- pipeline's side -------------------------------------------------------------


def account(server: Dovecot, folder: str, id: str = "newsletters", **keys: object) -> str:
    """An [[imap]] table for reader's account on ``server``."""
    values: dict[str, object] = {"id": id, "host": "127.0.0.1", "port": server.port, "security": "none",
                                 "user": READER, "folder": folder, **keys}
    return "\n[[imap]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


def make_config(tmp_path: Path, *tables: str, paths: list[Path] | None = None) -> Path:
    """The shipped config with its state in tmp_path, no feed to download, and these [[imap]] tables."""
    path = write_config(tmp_path, "".join(tables), paths=paths)
    text = path.read_text(encoding="utf-8")
    opml = f'opml = "{SEEDS / "subscriptions.opml"}"'
    assert text.count(opml) == 1
    path.write_text(text.replace(opml, 'opml = ""'), encoding="utf-8")
    return path


def read_mail(config_path: Path, now: datetime = T1) -> StepResult:
    config = load_config(config_path)
    with Store(config.store.path) as store:
        store.sync_sources(config.sources)
        return fetch_mailboxes(store, config, now)


def stored(config_path: Path) -> Store:
    return Store(load_config(config_path).store.path)


def titles(config_path: Path) -> list[str]:
    with stored(config_path) as store:
        return sorted(r["title"] for r in store.db.query("SELECT title FROM items"))


# --- tests without a server ------------------------------------------------------


def test_folder_names_are_quoted_modified_utf7():
    assert encode_folder("INBOX") == '"INBOX"'
    assert encode_folder("Newsletters 2026") == '"Newsletters 2026"'
    assert encode_folder("R&D") == '"R&-D"'
    assert encode_folder("Entwürfe") == '"Entw&APw-rfe"'
    assert encode_folder("日本語") == '"&ZeVnLIqe-"'
    assert encode_folder('say "hi"\\') == '"say \\"hi\\"\\\\"'


def test_message_urls_and_the_uids_still_to_read():
    a = ImapConfig(id="n", host="mail.example.org", user="me@example.org", folder="Weekly news")
    assert message_url(a, 123, 45) == "imap://me%40example.org@mail.example.org/Weekly%20news;UIDVALIDITY=123/;UID=45"
    b = ImapConfig(id="n", host="127.0.0.1", user="reader", port=10143, security="none")
    assert message_url(b, 7, 1) == "imap://reader@127.0.0.1:10143/INBOX;UIDVALIDITY=7/;UID=1"
    # "UID 8:*" answers the highest UID even when it is below 8
    assert uids_after([5], 7) == []
    assert uids_after([9, 8, 12, 8], 7) == [8, 9, 12]
    assert load_config(ROOT / "config.toml").imap == ()  # the shipped config reads no mailbox: it stays offline


def test_a_fetch_answer_may_carry_other_messages_flags():
    data = [b"3 (FLAGS (\\Seen))", (b"5 (UID 12 BODY[] {5}", b"Hello"), b")"]
    assert parse_fetch_body(data, 12) == b"Hello"
    assert parse_fetch_body([None], 12) is None


def test_a_password_in_the_config_is_an_error_line(tmp_path: Path, cli):
    path = make_config(tmp_path, '\n[[imap]]\nid = "mail"\nhost = "imap.example.org"\nuser = "me"\npassword = "hunter2"\n')
    result = cli("fetch", config=path)
    assert result.code == 1
    assert result.err.strip() == (
        f"Error: {path}: imap[0].password: not allowed in the config file; put the password in an "
        "environment variable and name it with imap[0].password_env (default PIPELINE_IMAP_PASSWORD)"
    )


def test_imap_settings_are_validated_with_their_dotted_keys(tmp_path: Path):
    path = make_config(
        tmp_path,
        '\n[[imap]]\nid = "Mail Box"\nhost = ""\nuser = "me"\nsecurity = "tls"\ntimeout = 0\nca_file = "nope.pem"\n'
        'mark_seen = "yes"\nfolders = ["INBOX"]\n',
        '\n[[imap]]\nid = "lattice-notes"\nhost = "imap.example.org"\nport = 70000\nuser = ""\npassword_env = "my password"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        "imap[0].folders: unknown key",
        "imap[0].id: required: lower-case letters, digits and dashes",
        "imap[0].security: must be one of ssl, starttls, none",
        f"imap[0].ca_file: no such file: {tmp_path / 'nope.pem'}",
        "imap[0].mark_seen: expected true or false, got a string",
        "imap[0].host: required: the IMAP server's name or address",
        "imap[0].timeout: must be greater than 0",
        "imap[1].id: 'lattice-notes' is also a [[sources]] id; `pipeline fetch --source` needs them apart",
        "imap[1].user: required: the login name",
        "imap[1].port: must be a port number",
        "imap[1].password_env: must be the name of an environment variable",
    ]
    ok = make_config(tmp_path, '\n[[imap]]\nid = "a"\nhost = "h"\nuser = "u"\n',
                     '\n[[imap]]\nid = "b"\nhost = "h"\nuser = "u"\nsecurity = "starttls"\n')
    a, b = load_config(ok).imap
    assert (a.port, a.security, a.folder, a.password_env, a.timeout, a.mark_seen, a.delete) == (
        993, "ssl", "INBOX", "PIPELINE_IMAP_PASSWORD", 30.0, False, False)
    assert b.port == 143


def test_the_commented_example_in_the_shipped_config_is_valid_and_documented(tmp_path: Path):
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    lines = text.splitlines()
    start = lines.index("# [[imap]]")
    block = []
    for line in lines[start:]:
        if not line.startswith("# ") or not (line == "# [[imap]]" or " = " in line):
            break
        block.append(line[2:])
    example = tomllib.loads("\n".join(block))["imap"][0]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for key in example:
        assert f"`imap[].{key}`" in readme, key
    config = load_config(make_config(tmp_path, "\n" + "\n".join(block) + "\n"))
    assert [a.id for a in config.imap] == [example["id"]]
    assert set(example) == {"id", "host", "port", "security", "folder", "user", "password_env", "ca_file",
                            "timeout", "mark_seen", "delete"}


# --- against Dovecot -----------------------------------------------------------------


def test_first_fetch_stores_the_messages_and_the_next_fetches_only_what_is_new(
    dovecot: Dovecot, folder: str, tmp_path: Path
):
    issues = [newsletter(1, "Open weights and the red-team calendar"),
              newsletter(2, "Why evaluation labs miss their dates"),
              newsletter(3, "A survey of forty labs, one year on")]
    append(dovecot, folder, *issues)
    path = make_config(tmp_path, account(dovecot, folder, id="inbox"))

    mark = dovecot.log_size()
    first = run_cli("fetch", "--source", "inbox", config=path)
    assert first.code == 0, first.err
    assert first.out.splitlines() == ["imap: 3 messages, 3 new items"]  # --source names only the mailbox
    assert dovecot.bodies_fetched(mark) == 3
    assert titles(path) == sorted(["Open weights and the red-team calendar", "Why evaluation labs miss their dates",
                                   "A survey of forty labs, one year on"])
    with stored(path) as store:
        sources = {r["source_id"] for r in store.db.query("SELECT source_id FROM items")}
        origins = [r["origin"] for r in store.db.query("SELECT origin FROM raw_documents ORDER BY origin")]
        state = store.imap_state("inbox", folder)
    assert sources == {"lattice-notes"}  # the sender maps to its source, as for .eml files
    assert state is not None and state.last_uid == 3 and state.messages == 3 and state.last_error is None
    quoted = folder.replace(" ", "%20")
    assert origins == [f"imap://reader@127.0.0.1:{dovecot.port}/{quoted};UIDVALIDITY={state.uidvalidity}/;UID={n}"
                       for n in (1, 2, 3)]

    mark = dovecot.log_size()
    second = run_cli("fetch", "--source", "inbox", config=path)
    assert second.code == 0, second.err
    assert second.out.splitlines() == ["imap: 0 messages, 0 new items"]
    assert dovecot.bodies_fetched(mark) == 0  # Dovecot saw no message fetched
    assert flags(dovecot, folder) == {1: set(), 2: set(), 3: set()}  # nothing marked \Seen, nothing deleted

    append(dovecot, folder, newsletter(4, "Model cards, dated and undated"))
    mark = dovecot.log_size()
    third = read_mail(path)
    assert (third.counts, third.problems) == ({"mailboxes": 1, "messages": 1, "new": 1}, ())
    assert dovecot.bodies_fetched(mark) == 1
    with stored(path) as store:
        assert store.imap_state("inbox", folder).last_uid == 4  # type: ignore[union-attr]
        assert store.db["items"].count == 4


def test_mark_seen_sets_seen_once_stored(dovecot: Dovecot, folder: str, tmp_path: Path):
    append(dovecot, folder, newsletter(11, "Seen one"), newsletter(12, "Seen two"))
    path = make_config(tmp_path, account(dovecot, folder, mark_seen=True))
    result = read_mail(path)
    assert result.counts == {"mailboxes": 1, "messages": 2, "new": 2, "marked seen": 2}
    assert flags(dovecot, folder) == {1: {"\\Seen"}, 2: {"\\Seen"}}
    assert titles(path) == ["Seen one", "Seen two"]


def test_delete_removes_the_messages_from_the_server_once_stored(dovecot: Dovecot, folder: str, tmp_path: Path):
    append(dovecot, folder, newsletter(21, "Gone one"), newsletter(22, "Gone two"))
    path = make_config(tmp_path, account(dovecot, folder, delete=True))
    mark = dovecot.log_size()
    result = read_mail(path)
    assert result.counts == {"mailboxes": 1, "messages": 2, "new": 2, "deleted": 2}
    assert flags(dovecot, folder) == {}
    assert any("expunged=2" in line for line in dovecot.sessions(READER, mark))
    assert titles(path) == ["Gone one", "Gone two"]
    again = read_mail(path)
    assert again.counts == {"mailboxes": 1} and titles(path) == ["Gone one", "Gone two"]


@pytest.mark.parametrize(("user", "left"), [(READER, {1: {"\\Deleted"}}), (VETERAN, {})])
def test_delete_expunges_by_uid_and_only_without_uidplus_the_whole_folder(
    dovecot: Dovecot, folder: str, tmp_path: Path, user: str, left: dict[int, set[str]]
):
    conn = dovecot.client(user)
    try:
        has_uidplus = "UIDPLUS" in conn.capability()[1][0].decode().split()
    finally:
        conn.logout()
    assert has_uidplus is (user == READER)
    append(dovecot, folder, newsletter(25, "Read, then deleted by a person"))
    keep = make_config(tmp_path, account(dovecot, folder, user=user))
    assert read_mail(keep).counts["new"] == 1
    conn = dovecot.client()  # a person deletes it in their mail program, which expunges later
    try:
        conn.select(encode_folder(folder))
        assert conn.uid("STORE", "1", "+FLAGS", r"(\Deleted)")[0] == "OK"
    finally:
        conn.logout()
    append(dovecot, folder, newsletter(26, "Deleted by pipeline"))
    delete = make_config(tmp_path, account(dovecot, folder, user=user, delete=True))
    assert read_mail(delete).counts == {"mailboxes": 1, "messages": 1, "new": 1, "deleted": 1}
    # UID EXPUNGE removes only pipeline's message; a plain EXPUNGE also the one the person flagged
    assert flags(dovecot, folder) == left


def test_a_broken_message_is_reported_with_its_uid_and_the_rest_is_stored(
    dovecot: Dovecot, folder: str, tmp_path: Path
):
    append(dovecot, folder, newsletter(31, "Before the broken one"), BROKEN, newsletter(32, "After the broken one"))
    path = make_config(tmp_path, account(dovecot, folder, mark_seen=True))
    result = read_mail(path)
    assert [str(p) for p in result.problems] == [
        f"imap newsletters, folder {folder}, UID 2: not an e-mail message: no headers found"
    ]
    assert result.counts == {"mailboxes": 1, "messages": 3, "new": 2, "unreadable": 1, "marked seen": 2}
    assert titles(path) == ["After the broken one", "Before the broken one"]
    with stored(path) as store:
        kept = list(store.db.query("SELECT origin, payload, parse_error FROM raw_documents WHERE parse_error IS NOT NULL"))
    assert len(kept) == 1 and kept[0]["payload"] == BROKEN and kept[0]["origin"].endswith(";UID=2")
    # the unreadable message is left as it is on the server, for a person to look at
    assert flags(dovecot, folder) == {1: {"\\Seen"}, 2: set(), 3: {"\\Seen"}}
    assert read_mail(path).counts == {"mailboxes": 1}  # and it is not read (nor reported) again


def test_a_recreated_folder_is_read_again_without_storing_anything_twice(
    dovecot: Dovecot, folder: str, tmp_path: Path
):
    one, two = newsletter(41, "Recreated one"), newsletter(42, "Recreated two")
    append(dovecot, folder, one, two)
    path = make_config(tmp_path, account(dovecot, folder))
    assert read_mail(path).counts["new"] == 2
    with stored(path) as store:
        before = store.imap_state("newsletters", folder)
        counts_before = store.table_counts()
    conn = dovecot.client()
    try:
        assert conn.delete(encode_folder(folder))[0] == "OK"
        assert conn.create(encode_folder(folder))[0] == "OK"
    finally:
        conn.logout()
    # the same two messages, one of them again with a header added on the way, and a new one
    relayed = newsletter(41, "Recreated one", extra_header="Received: from relay.inbox.example by mx.inbox.example")
    append(dovecot, folder, one, two, relayed, newsletter(43, "Recreated three"))
    result = read_mail(path)
    assert result.problems == ()
    assert result.counts == {"mailboxes": 1, "messages": 4, "already stored": 2, "unchanged": 1, "new": 1}
    with stored(path) as store:
        after = store.imap_state("newsletters", folder)
        counts_after = store.table_counts()
    assert before is not None and after is not None
    assert after.uidvalidity != before.uidvalidity and after.last_uid == 4
    assert counts_after["items"] == counts_before["items"] + 1
    assert titles(path) == ["Recreated one", "Recreated three", "Recreated two"]


def test_mailboxes_that_cannot_be_read_are_problems_and_the_others_go_on(
    dovecot: Dovecot, folder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    append(dovecot, folder, newsletter(51, "Still delivered"))
    monkeypatch.setenv("PIPELINE_TEST_WRONG_PASSWORD", "not-the-password")
    monkeypatch.delenv("PIPELINE_TEST_NO_PASSWORD", raising=False)
    closed = _free_port()
    path = make_config(
        tmp_path,
        account(dovecot, folder, id="wrong-password", password_env="PIPELINE_TEST_WRONG_PASSWORD"),
        account(dovecot, folder, id="no-password", password_env="PIPELINE_TEST_NO_PASSWORD"),
        account(dovecot, folder, id="nobody-home", port=closed, timeout=5),
        account(dovecot, "No such folder", id="no-folder"),
        account(dovecot, folder, id="good"),
    )
    result = run_cli("--now", T1.isoformat(), "fetch", config=path)
    assert result.code == 3, result.err
    assert result.out.splitlines() == ["fetch: fetched 0, not modified 0, failed 0, new items 0",
                                       "imap: 1 messages, 1 new items, 4 of 5 mailboxes failed"]
    problems = [line for line in result.err.splitlines() if line.startswith("WARNING: skipped imap ")]
    assert problems == [
        f"WARNING: skipped imap wrong-password (127.0.0.1:{dovecot.port}): login refused for user 'reader': "
        "[AUTHENTICATIONFAILED] Authentication failed.",
        f"WARNING: skipped imap no-password (127.0.0.1:{dovecot.port}): no password: the environment variable "
        "PIPELINE_TEST_NO_PASSWORD (imap[1].password_env) is not set",
        f"WARNING: skipped imap nobody-home (127.0.0.1:{closed}): cannot connect: Connection refused",
        f"WARNING: skipped imap no-folder (127.0.0.1:{dovecot.port}): cannot open folder 'No such folder': "
        "Mailbox doesn't exist: No such folder",
    ]
    assert "1 input(s) skipped" not in result.err and "4 input(s) skipped" in result.err
    assert titles(path) == ["Still delivered"]

    status = run_cli("status", config=path)
    assert status.code == 0, status.err
    block = status.out.split("\nMailboxes (5):\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert block[0].split() == ["ACCOUNT", "FOLDER", "LAST", "UID", "LAST", "CHECKED", "LAST", "ERROR"]
    rows = {line.split()[0]: line for line in block[1:]}
    assert set(rows) == {"wrong-password", "no-password", "nobody-home", "no-folder", "good"}
    assert rows["good"].split()[-2:] == ["2026-04-13T08:00:00+00:00", "-"] and " 1  " in rows["good"]
    assert "login refused for user 'reader'" in rows["wrong-password"]
    assert rows["nobody-home"].endswith("cannot connect: Connection refused")


def test_run_and_the_scheduled_update_read_the_mailboxes(dovecot: Dovecot, folder: str, tmp_path: Path):
    from pipeline import schedule as schedule_mod

    append(dovecot, folder, newsletter(61, "Read by run"))
    path = make_config(tmp_path, account(dovecot, folder), paths=[])
    path.write_text(path.read_text().replace("on_run = false", "on_run = true", 1))
    config = load_config(path)
    assert config.fetch.on_run
    result = run_cli("run", config=path)
    assert result.code == 0, result.err
    assert "imap: 1 messages, 1 new items" in result.out.splitlines()

    append(dovecot, folder, newsletter(62, "Read by the scheduler"))
    with Store(config.store.path) as store:
        results = schedule_mod.update_work(config)(store, T1)
    imap_results = [r for r in results if r.stage == "imap"]
    assert [r.counts for r in imap_results] == [{"mailboxes": 1, "messages": 1, "new": 1}]
    assert titles(path) == ["Read by run", "Read by the scheduler"]


def test_ssl_and_starttls_with_the_ca_file(dovecot_tls: Dovecot, tmp_path: Path):
    server = dovecot_tls
    folder = _new_folder(server)
    append(server, folder, newsletter(71, "Over TLS"))
    assert server.ssl_port is not None and server.ca_file is not None
    path = make_config(
        tmp_path,
        account(server, folder, id="over-ssl", security="ssl", port=server.ssl_port, ca_file=str(server.ca_file)),
        account(server, folder, id="over-starttls", security="starttls", ca_file=str(server.ca_file)),
        account(server, folder, id="untrusted", security="ssl", port=server.ssl_port),
    )
    mark = server.log_size()
    result = read_mail(path)
    assert result.counts == {"mailboxes": 3, "messages": 2, "new": 1, "already stored": 1, "mailboxes failed": 1}
    assert [str(p) for p in result.problems] == [
        f"imap untrusted (127.0.0.1:{server.ssl_port}): cannot connect: the server's TLS certificate is not "
        "trusted (unable to get local issuer certificate); set ca_file to a CA certificate that signed it"
    ]
    logins = [line for line in server.log.read_text()[mark:].splitlines() if "Login: user=<reader>" in line]
    assert len(logins) == 2 and all(", TLS," in line for line in logins)
    with stored(path) as store:
        assert [(s.account, s.last_uid) for s in store.imap_states()] == [
            ("over-ssl", 1), ("over-starttls", 1), ("untrusted", 0)]
    assert titles(path) == ["Over TLS"]
