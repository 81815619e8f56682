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

Only digests whose window has closed are mailed: a digest still open (the
day or week is not over) may still grow. ``deliver_digests`` with no digest
named mails every *due* digest: closed, recorded, with stories, whose window
closed within the last ``schedule.catch_up_days`` days (at least one), and not
yet sent to some address. So every delivering run (a scheduled job,
``pipeline deliver``, ``pipeline digest --deliver``, ``digest.email.on_digest``)
also retries what failed before and mails what a catch-up made.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
from collections.abc import Iterable
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

from .config import Config, EmailConfig
from .digest import PERIODS, closes_at, period_window, window_closed
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


def due_digests(store: Store, config: Config, now: datetime, *, period: str | None = None) -> list[str]:
    """Ids of the digests a delivery mails by default, oldest first.

    Closed by ``now``, with stories, closed within the last ``schedule.catch_up_days``
    days (at least one), and not yet sent to every address of ``digest.email.to``.
    """
    cfg = config.digest
    since = now - timedelta(days=max(config.schedule.catch_up_days, 1))
    due = []
    for row in store.mailable_digests():
        if row["period"] not in PERIODS or (period is not None and row["period"] != period):
            continue
        try:
            _, end = period_window(row["period"], row["date"], cfg)
        except ValueError:  # a key this version cannot read
            continue
        if not since <= end <= now:
            continue
        sent = {r["address"] for r in store.deliveries(row["id"]) if r["status"] == "sent"}
        if any(address not in sent for address in cfg.email.to):
            due.append(row["id"])
    return due


def deliver_digests(
    store: Store,
    config: Config,
    now: datetime,
    *,
    digest_ids: Iterable[str] | None = None,
    period: str | None = None,
    resend_unknown: bool = False,
) -> StepResult:
    """Send each given digest (default: every due one, of ``period`` or of all) to every recipient.

    A digest whose window is still open is not sent: a log line says when it closes.
    """
    cfg = config.digest.email
    if not cfg.to:
        return _result({}, [Problem("digest.email.to", "no recipients configured")])
    named = digest_ids is not None  # asked for by name: an open one is worth a warning
    if digest_ids is None:
        digest_ids = due_digests(store, config, now, period=period)
    counts = {"sent": 0, "already sent": 0, "failed": 0, "unknown": 0, "still open": 0}
    problems: list[Problem] = []
    todo: list[tuple[str, str, bytes, str]] = []
    for digest_id in digest_ids:
        try:
            entry = store.digest_entry(digest_id)
        except KeyError:
            problems.append(Problem(digest_id, "no such digest"))
            continue
        if not entry.story_count:
            continue
        if not window_closed(entry.period, entry.date, config.digest, now):
            counts["still open"] += 1
            closes = closes_at(entry.period, entry.date, config.digest)
            log.log(logging.WARNING if named else logging.INFO,
                    "the %s digest %s is still open until %s: not mailed now; the first delivery after that "
                    "mails it", entry.period, entry.date, closes)
            continue
        eml_path = (config.digest.output_dir / entry.path).with_suffix(".eml")
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
