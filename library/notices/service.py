"""A reader's choice of which notices to receive, one kind at a time."""

from __future__ import annotations

from library.accounts.principal import Principal
from library.db import read_transaction, run_in_write_transaction
from library.errors import InvalidInput, NotPermitted
from library.notices.messages import choosable
from library.notices.tables import NoticeChoice


async def choices_of(principal: Principal) -> list[dict[str, object]]:
    """Every kind a reader may turn off, with whether they receive it (the default: yes)."""
    if not principal.is_patron:
        raise NotPermitted("patron_only")
    async with read_transaction():
        rows = await NoticeChoice.select(NoticeChoice.kind, NoticeChoice.receive).where(
            NoticeChoice.patron == principal.id)
    chosen = {row["kind"]: row["receive"] for row in rows}
    return [{"kind": message.kind, "label": message.label, "receive": chosen.get(message.kind, True)}
            for message in choosable()]


async def set_choices(principal: Principal, receive: set[str]) -> None:
    """Receive the kinds in `receive`, not the other choosable ones (one row per kind, so a second
    save of the same form changes nothing, and two saves at once cannot make two rows)."""
    if not principal.is_patron:
        raise NotPermitted("patron_only")
    kinds = [message.kind for message in choosable()]
    unknown = receive - set(kinds)
    if unknown:  # a forged form: nothing is saved
        raise InvalidInput("invalid_choice", field="kind")

    async def work() -> None:
        for kind in kinds:
            await NoticeChoice.insert(NoticeChoice(patron=principal.id, kind=kind, receive=kind in receive)).on_conflict(
                target=(NoticeChoice.patron, NoticeChoice.kind), action="DO UPDATE",
                values=[NoticeChoice.receive, NoticeChoice.updated_at])

    await run_in_write_transaction(work)
