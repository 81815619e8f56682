"""IMAP: read newsletters from the mailbox folders named in config.toml ([[imap]]).

Part of the fetch stage, the only one that touches the network; `pipeline fetch`
runs it after the feeds. For each account:

1. connect (TLS from the start, STARTTLS, or neither) and log in with the
   password from the environment variable ``password_env``;
2. open the folder read-only (EXAMINE), unless ``mark_seen`` or ``delete``
   needs to change it, and read its UIDVALIDITY;
3. ``UID SEARCH`` for the UIDs above the last one stored, and
   ``UID FETCH uid (BODY.PEEK[])`` each one, which never sets \\Seen;
4. store each message as a raw e-mail document with its items (ingest's
   ``store_document``), in one transaction together with its UID, so a crash
   never loses or repeats a message;
5. then, if asked, set \\Seen or delete it on the server.

A changed UIDVALIDITY (the folder was recreated) or a changed server starts
the folder again from UID 1; the messages already stored are recognised by
their bytes, Message-ID or content hash, so nothing is stored twice. A mailbox
that cannot be reached or refuses the login is a problem naming the account;
the other accounts go on. A message that cannot be read is kept raw, reported
with its UID, and left as it is on the server.

The small functions at the top are pure (names, URLs, responses); ``Mailbox``
is the only code that talks to the server.
"""

from __future__ import annotations

import base64
import imaplib
import logging
import os
import re
import socket
import ssl
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

from .config import Config, ImapConfig
from .ingest import raw_from_bytes, store_document
from .interrupt import stop_requested
from .models import Problem, Source, StepResult
from .store import Store

log = logging.getLogger(__name__)

STAGE = "imap"


class MailboxError(Exception):
    """A mailbox that cannot be read now; the message says why, for a person."""


# --- pure helpers -------------------------------------------------------------


def encode_folder(name: str) -> str:
    """A folder name as an IMAP command argument: modified UTF-7 (RFC 3501 5.1.3), quoted."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            packed = base64.b64encode("".join(run).encode("utf-16-be")).rstrip(b"=").replace(b"/", b",")
            out.append("&" + packed.decode("ascii") + "-")
            run.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    text = "".join(out)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def default_port(security: str) -> int:
    return 993 if security == "ssl" else 143


def server_of(account: ImapConfig) -> str:
    """Who the UIDs belong to: a folder read on another server or as another user starts again."""
    return f"{account.user}@{account.host}:{account.port}"


def message_url(account: ImapConfig, uidvalidity: int, uid: int) -> str:
    """Where a message came from, as an IMAP URL (RFC 5092): the raw document's origin."""
    host = account.host if ":" not in account.host else f"[{account.host}]"
    port = "" if account.port == default_port(account.security) else f":{account.port}"
    return (
        f"imap://{quote(account.user, safe='')}@{host}{port}/{quote(account.folder, safe='/')}"
        f";UIDVALIDITY={uidvalidity}/;UID={uid}"
    )


def uids_after(found: Iterable[int], last_uid: int) -> list[int]:
    """The UIDs still to read, in order. ``UID SEARCH UID n:*`` also answers the highest UID when
    it is below n, so the answer is filtered rather than trusted."""
    return sorted({u for u in found if u > last_uid})


def parse_search(data: list[Any]) -> list[int]:
    """The UIDs of a ``UID SEARCH`` answer (``[b'3 4 9']``)."""
    uids: list[int] = []
    for line in data:
        if isinstance(line, bytes):
            uids.extend(int(w) for w in line.split() if w.isdigit())
    return uids


def parse_fetch_body(data: list[Any], uid: int) -> bytes | None:
    """The message bytes of a ``UID FETCH uid (BODY.PEEK[])`` answer, None if the server has no such
    message (it was expunged meanwhile). The answer may hold other messages' flag updates."""
    bodies: list[tuple[bytes, bytes]] = [
        (part[0], part[1])
        for part in data
        if isinstance(part, tuple) and len(part) == 2 and b"BODY[]" in part[0].upper()
    ]
    if len(bodies) == 1:
        return bodies[0][1]
    wanted = re.compile(rb"\bUID %d\b" % uid)
    for head, body in bodies:
        if wanted.search(head):
            return body
    return None


# Dovecot ends its answers with how long they took: "... (0.001 + 0.000 secs)."
_TIMING = re.compile(r"\s*\(\d+\.\d+ \+ [^)]*secs\)\.?$")


def _text(value: Any) -> str:
    """A server's or imaplib's message as plain text."""
    if isinstance(value, bytes):
        return _TIMING.sub("", value.decode("utf-8", "replace"))
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value if v is not None)
    return str(value)


def describe_error(exc: BaseException) -> str:
    """Why talking to a server failed, in words (no traceback, no class names when avoidable)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"the server's TLS certificate is not trusted ({exc.verify_message}); "
                "set ca_file to a CA certificate that signed it")
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "no answer in time (timeout)"
    if isinstance(exc, socket.gaierror):
        return f"unknown host: {exc.strerror or exc}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, imaplib.IMAP4.error):
        return _text(exc.args[0] if exc.args else exc)
    return f"{type(exc).__name__}: {exc}"


SUMMARY_KEYS = ("messages", "new", "mailboxes", "mailboxes failed")


def summary_line(result: StepResult) -> str:
    """One line for a person: messages read, new items, and the mailboxes that could not be read."""
    c = result.counts
    line = f"{c.get('messages', 0)} messages, {c.get('new', 0)} new items"
    if c.get("mailboxes failed"):
        line += f", {c['mailboxes failed']} of {c.get('mailboxes', 0)} mailboxes failed"
    return line


# --- the connection -------------------------------------------------------------


class Mailbox:
    """One logged-in connection to an account, with its folder selected (``open``)."""

    def __init__(self, account: ImapConfig, password: str) -> None:
        self.account = account
        self._password = password
        self._conn: imaplib.IMAP4 | None = None
        self.capabilities: frozenset[str] = frozenset()
        self.writable = account.mark_seen or account.delete

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.account.ca_file is not None:
            context.load_verify_locations(cafile=str(self.account.ca_file))
        return context

    def _ok(self, what: str, answer: tuple[str, list[Any]]) -> list[Any]:
        typ, data = answer
        if typ != "OK":
            raise MailboxError(f"{what} refused: {_text(data)}")
        return data

    def open(self) -> int:
        """Connect, log in and select the folder; return its UIDVALIDITY."""
        a = self.account
        try:
            if a.security == "ssl":
                conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(a.host, a.port, ssl_context=self._tls(), timeout=a.timeout)
            else:
                conn = imaplib.IMAP4(a.host, a.port, timeout=a.timeout)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(f"cannot connect: {describe_error(exc)}") from exc
        self._conn = conn
        try:
            if a.security == "starttls":
                conn.starttls(ssl_context=self._tls())
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(f"STARTTLS failed: {describe_error(exc)}") from exc
        try:
            conn.login(a.user, self._password)
        except imaplib.IMAP4.error as exc:
            raise MailboxError(f"login refused for user {a.user!r}: {describe_error(exc)}") from exc
        data = self._ok("CAPABILITY", conn.capability())
        self.capabilities = frozenset(_text(data).upper().split())
        try:
            typ, data = conn.select(encode_folder(a.folder), readonly=not self.writable)
        except imaplib.IMAP4.readonly:
            raise MailboxError(f"folder {a.folder!r} is read-only, and mark_seen or delete needs to change it") from None
        if typ != "OK":
            raise MailboxError(f"cannot open folder {a.folder!r}: {_text(data)}")
        _, validity = conn.response("UIDVALIDITY")
        try:
            return int(_text(validity))
        except ValueError:
            raise MailboxError(f"the server sent no UIDVALIDITY for folder {a.folder!r}") from None

    @property
    def conn(self) -> imaplib.IMAP4:
        if self._conn is None:
            raise MailboxError("not connected")
        return self._conn

    def uids_after(self, last_uid: int) -> list[int]:
        data = self._ok("UID SEARCH", self.conn.uid("SEARCH", f"UID {last_uid + 1}:*"))
        return uids_after(parse_search(data), last_uid)

    def fetch(self, uid: int) -> bytes | None:
        """The message's bytes, without setting \\Seen (BODY.PEEK); None if it is gone."""
        return parse_fetch_body(self._ok("UID FETCH", self.conn.uid("FETCH", str(uid), "(BODY.PEEK[])")), uid)

    def mark_seen(self, uid: int) -> None:
        self._ok("UID STORE", self.conn.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Seen)"))

    def delete(self, uid: int) -> bool:
        """Flag the message \\Deleted and, when the server has UIDPLUS, expunge just it.

        Returns whether it is gone already; otherwise ``expunge`` at the end removes it.
        """
        self._ok("UID STORE", self.conn.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)"))
        if "UIDPLUS" in self.capabilities:
            self._ok("UID EXPUNGE", self.conn.uid("EXPUNGE", str(uid)))
            return True
        return False

    def expunge(self) -> None:
        """Remove every message flagged \\Deleted in the folder (servers without UIDPLUS)."""
        self._ok("EXPUNGE", self.conn.expunge())

    def close(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            conn.logout()
        except (OSError, imaplib.IMAP4.error):
            try:
                conn.shutdown()
            except OSError:
                pass

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


# --- the step ----------------------------------------------------------------------


def fetch_mailboxes(
    store: Store,
    config: Config,
    now: datetime,
    *,
    only: set[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> StepResult:
    """Read the new messages of every [[imap]] account (or of those in ``only``) into the store."""
    environ = os.environ if environ is None else environ
    counts: Counter[str] = Counter()
    problems: list[Problem] = []
    known = store.sources()
    for index, account in enumerate(config.imap):
        if only is not None and account.id not in only:
            continue
        if stop_requested():
            log.warning("imap stopped on request; the next run reads the remaining mailboxes")
            break
        where = f"imap {account.id} ({account.host}:{account.port})"
        counts["mailboxes"] += 1
        password = environ.get(account.password_env, "")
        if not password:
            error = (f"no password: the environment variable {account.password_env} "
                     f"(imap[{index}].password_env) is not set")
            store.record_imap_check(account.id, account.folder, when=now, error=error)
            problems.append(Problem(where, error))
            counts["mailboxes failed"] += 1
            continue
        error = None
        try:
            with Mailbox(account, password) as mailbox:
                _read_folder(store, config, mailbox, now, known, counts, problems)
        except MailboxError as exc:
            error = str(exc)
        except (OSError, imaplib.IMAP4.error) as exc:  # the connection broke while reading
            error = f"connection lost: {describe_error(exc)}"
        store.record_imap_check(account.id, account.folder, when=now, error=error)
        if error:
            problems.append(Problem(where, error))
            counts["mailboxes failed"] += 1
    for p in problems:
        log.warning("skipped %s", p)
    return StepResult(STAGE, {k: v for k, v in counts.items() if v}, tuple(problems))


def _read_folder(
    store: Store,
    config: Config,
    mailbox: Mailbox,
    now: datetime,
    known: list[Source],
    counts: Counter[str],
    problems: list[Problem],
) -> None:
    """Read the new messages of one selected folder, one transaction per message."""
    account = mailbox.account
    uidvalidity = mailbox.open()
    before = store.imap_state(account.id, account.folder)
    store.begin_imap_folder(account.id, account.folder, server=server_of(account), uidvalidity=uidvalidity)
    state = store.imap_state(account.id, account.folder)
    last_uid = state.last_uid if state else 0
    if before is not None and before.uidvalidity is not None and last_uid == 0 and before.last_uid:
        log.info("imap %s: folder %r changed (UIDVALIDITY %s, was %s); reading it again from the start",
                 account.id, account.folder, uidvalidity, before.uidvalidity)
    pending_expunge = False
    for uid in mailbox.uids_after(last_uid):
        if stop_requested():  # between messages: every stored message is complete
            log.warning("imap %s stopped on request; the next run reads the remaining messages", account.id)
            break
        payload = mailbox.fetch(uid)
        if payload is None:
            continue  # expunged by someone else since the search
        counts["messages"] += 1
        doc = raw_from_bytes(payload, origin=message_url(account, uidvalidity, uid), media="email", received=now)
        where = f"imap {account.id}, folder {account.folder}, UID {uid}"
        readable = True
        try:
            with store.transaction():
                if store.has_raw(doc.id):
                    counts["already stored"] += 1
                else:
                    c, found = store_document(store, config, doc, now, known=known)
                    readable = not c["failed"]
                    counts["unreadable"] += c.pop("failed", 0)
                    counts.update({k: v for k, v in c.items() if k != "files read"})
                    problems.extend(Problem(where, p.message) for p in found)
                store.record_imap_uid(account.id, account.folder, uid)
        except Exception as exc:  # noqa: BLE001 - reported; the other mailboxes and the feeds go on
            log.debug("imap: storing %s failed", where, exc_info=True)
            problems.append(Problem(where, f"unexpected error while storing: {exc!r}; this folder is read "
                                           "again from this message next time"))
            counts["not stored"] += 1
            # the last UID stays before this message, so nothing after it is stored ahead of it and it
            # is never skipped: the folder goes on from here on the next run
            break
        if not readable:
            continue  # kept raw in the store; left as it is on the server for a person to look at
        if account.mark_seen:
            mailbox.mark_seen(uid)
            counts["marked seen"] += 1
        if account.delete:
            pending_expunge = not mailbox.delete(uid) or pending_expunge
            counts["deleted"] += 1
    if pending_expunge:
        mailbox.expunge()
