"""The audit trail: every state change writes one entry, inside its own transaction."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from library.branches.tables import AuditEntry
from library.db import Statement


async def record(actor: str, action: str, subject: str, **detail: Any) -> None:
    await AuditEntry.insert(AuditEntry(actor=actor, action=action, subject=subject, detail=detail))


def statement(actor: str, action: str, subject: str, at: dt.datetime, **detail: Any) -> Statement:
    """The same entry as a statement, for a transaction script (`library.db.run_script`)."""
    return Statement("INSERT INTO audit_entry (at, actor, action, subject, detail) VALUES ({}, {}, {}, {}, {})",
                     (at, actor, action, subject, json.dumps(detail, ensure_ascii=False)))
