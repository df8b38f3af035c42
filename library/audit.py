"""The audit trail: every state change writes one entry, inside its own transaction."""

from __future__ import annotations

from typing import Any

from library.branches.tables import AuditEntry


async def record(actor: str, action: str, subject: str, **detail: Any) -> None:
    await AuditEntry.insert(AuditEntry(actor=actor, action=action, subject=subject, detail=detail))
