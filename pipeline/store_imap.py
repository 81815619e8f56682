"""SQL of the IMAP step: how far each mailbox folder has been read.

Part of the store (``Store`` inherits it), kept apart so store.py stays a
readable size. The ``imap_state`` table comes from the ``070_imap_state``
migration in store.py: one row per account and folder, with the folder's
UIDVALIDITY, the highest UID stored, when it was last checked, the last error
and how many messages were stored from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .store_time import ts


@dataclass(frozen=True)
class ImapState:
    """What the store knows about one folder of one account."""

    account: str
    folder: str
    server: str | None  # user@host:port the UIDs belong to
    uidvalidity: int | None
    last_uid: int
    last_checked: datetime | None
    last_error: str | None
    messages: int  # messages stored from this folder, over all runs


def _state(row: dict[str, Any]) -> ImapState:
    return ImapState(
        account=row["account"],
        folder=row["folder"],
        server=row["server"],
        uidvalidity=row["uidvalidity"],
        last_uid=row["last_uid"],
        last_checked=datetime.fromisoformat(row["last_checked"]) if row["last_checked"] else None,
        last_error=row["last_error"],
        messages=row["messages"],
    )


class ImapStateStore:
    """Mixed into ``Store``: relies on its ``db`` and ``_rows``."""

    db: Any

    def _rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:  # provided by Store
        raise NotImplementedError

    def imap_state(self, account: str, folder: str) -> ImapState | None:
        rows = self._rows("SELECT * FROM imap_state WHERE account = ? AND folder = ?", [account, folder])
        return _state(rows[0]) if rows else None

    def imap_states(self) -> list[ImapState]:
        return [_state(r) for r in self._rows("SELECT * FROM imap_state ORDER BY account, folder")]

    def begin_imap_folder(self, account: str, folder: str, *, server: str, uidvalidity: int) -> None:
        """Note the folder's UIDVALIDITY; when it or the server changed, reading starts again at UID 1."""
        self.db.execute(
            """INSERT INTO imap_state (account, folder, server, uidvalidity, last_uid) VALUES (?, ?, ?, ?, 0)
               ON CONFLICT(account, folder) DO UPDATE SET
                 last_uid = CASE WHEN imap_state.uidvalidity IS excluded.uidvalidity
                                  AND imap_state.server IS excluded.server
                                 THEN imap_state.last_uid ELSE 0 END,
                 uidvalidity = excluded.uidvalidity, server = excluded.server""",
            [account, folder, server, uidvalidity],
        )

    def record_imap_uid(self, account: str, folder: str, uid: int) -> None:
        """One more message of the folder is stored (call inside the message's transaction)."""
        self.db.execute(
            """UPDATE imap_state SET last_uid = MAX(last_uid, ?), messages = messages + 1
               WHERE account = ? AND folder = ?""",
            [uid, account, folder],
        )

    def record_imap_check(self, account: str, folder: str, *, when: datetime, error: str | None) -> None:
        """The end of one visit to the folder: when, and the error that ended it (None: it went well)."""
        self.db.execute(
            """INSERT INTO imap_state (account, folder, last_checked, last_error) VALUES (?, ?, ?, ?)
               ON CONFLICT(account, folder) DO UPDATE SET
                 last_checked = excluded.last_checked, last_error = excluded.last_error""",
            [account, folder, ts(when), error],
        )
