"""Mail digests to the addresses in ``digest.email.to``, each digest at most once per address.

The message is the digest's ``.eml`` file with its ``To`` header set to the
one address it goes to. Every send is bracketed by two records in the
``deliveries`` table, each committed on its own:

- ``sending`` before the message is handed to the SMTP server,
- ``sent`` once the server accepted it, or ``failed`` when it refused it
  or could not be reached (a failed delivery is tried again next time).

A row still ``sending`` when a later run starts means the earlier run
stopped between the two: the server may or may not have the message. Such a
delivery is not repeated (a missing digest is better than a duplicate); it
is reported as a problem, and ``pipeline deliver --resend-unknown`` sends it
again on purpose.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
from collections.abc import Iterable
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

from .config import Config, EmailConfig
from .models import Problem, StepResult
from .store import Store

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    pass


def _tls_context(cfg: EmailConfig) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if cfg.ca_file is not None:
        context.load_verify_locations(cafile=str(cfg.ca_file))
    return context


def connect(cfg: EmailConfig, environ: dict[str, str] | None = None) -> smtplib.SMTP:
    """An SMTP connection, secured as configured and logged in when a user name is set."""
    environ = os.environ if environ is None else environ  # type: ignore[assignment]
    password = None
    if cfg.username:
        password = environ.get(cfg.password_env)
        if not password:
            raise DeliveryError(f"digest.email.username is set but ${cfg.password_env} is empty")
    if cfg.security == "ssl":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=_tls_context(cfg))
    else:
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
    try:
        smtp.ehlo()
        if cfg.security == "starttls":
            smtp.starttls(context=_tls_context(cfg))
            smtp.ehlo()
        if cfg.username:
            smtp.login(cfg.username, password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def message_for(eml: bytes, address: str) -> EmailMessage:
    msg = message_from_bytes(eml, policy=policy.SMTP)
    del msg["To"]
    msg["To"] = address
    return msg  # type: ignore[return-value]


def _result(counts: dict[str, int], problems: list[Problem]) -> StepResult:
    for problem in problems:
        log.warning("%s", problem)
    return StepResult("deliver", {k: v for k, v in counts.items() if v}, tuple(problems))


def deliver_digests(
    store: Store,
    config: Config,
    now: datetime,
    *,
    digest_ids: Iterable[str] | None = None,
    resend_unknown: bool = False,
) -> StepResult:
    """Send each given digest (default: the newest of each configured period) to every recipient."""
    cfg = config.digest.email
    if not cfg.to:
        return _result({}, [Problem("digest.email.to", "no recipients configured")])
    entries = {e.id: e for e in store.digest_entries()}
    if digest_ids is None:
        newest: dict[str, str] = {}
        for e in sorted(entries.values(), key=lambda e: e.date):
            if e.story_count and e.period in config.digest.periods:
                newest[e.period] = e.id
        digest_ids = list(newest.values())
    counts = {"sent": 0, "already sent": 0, "failed": 0, "unknown": 0}
    problems: list[Problem] = []
    todo: list[tuple[str, str, bytes, str]] = []
    for digest_id in digest_ids:
        entry = entries.get(digest_id)
        if entry is None:
            problems.append(Problem(digest_id, "no such digest"))
            continue
        eml_path = config.digest.output_dir / entry.path
        eml_path = eml_path.with_suffix(".eml")
        if not entry.story_count:
            continue
        try:
            eml = eml_path.read_bytes()
        except OSError as exc:
            problems.append(Problem(str(eml_path), f"cannot read the digest e-mail: {exc.strerror}"))
            continue
        msg_id = str(message_from_bytes(eml, policy=policy.SMTP)["Message-ID"])
        for address in cfg.to:
            row = store.delivery(digest_id, address)
            if row and row["status"] == "sent":
                counts["already sent"] += 1
            elif row and row["status"] == "sending" and not resend_unknown:
                counts["unknown"] += 1
                problems.append(
                    Problem(
                        f"{digest_id} to {address}",
                        "an earlier run stopped while sending; not sent again "
                        "(pipeline deliver --resend-unknown sends it)",
                    )
                )
            else:
                todo.append((digest_id, address, eml, msg_id))
    if not todo:
        return _result(counts, problems)
    try:
        smtp = connect(cfg)
    except (OSError, smtplib.SMTPException, DeliveryError) as exc:
        where = f"smtp {cfg.host}:{cfg.port}"
        for digest_id, address, _, msg_id in todo:
            store.mark_delivery(digest_id, address, status="sending", message_id=msg_id, now=now)
            store.mark_delivery(digest_id, address, status="failed", message_id=msg_id, now=now, error=str(exc))
        counts["failed"] += len(todo)
        problems.append(Problem(where, f"cannot connect or log in: {exc}"))
        return _result(counts, problems)
    try:
        for digest_id, address, eml, msg_id in todo:
            store.mark_delivery(digest_id, address, status="sending", message_id=msg_id, now=now)
            try:
                smtp.send_message(message_for(eml, address), from_addr=cfg.sender, to_addrs=[address])
            except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
                # The server answered with a refusal: nothing was delivered, so it may be tried again.
                store.mark_delivery(digest_id, address, status="failed", message_id=msg_id, now=now, error=str(exc))
                counts["failed"] += 1
                problems.append(Problem(f"{digest_id} to {address}", f"refused: {exc}"))
                continue
            except (OSError, smtplib.SMTPException) as exc:
                # The connection broke while the message was on its way: the server may have it.
                # The row stays 'sending' (state unknown, not repeated); the rest waits for the next run.
                counts["unknown"] += 1
                problems.append(
                    Problem(f"{digest_id} to {address}", f"connection lost while sending, may or may not be delivered: {exc}")
                )
                break
            store.mark_delivery(digest_id, address, status="sent", message_id=msg_id, now=now)
            counts["sent"] += 1
            log.info("sent %s to %s", digest_id, address)
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
    return _result(counts, problems)
