"""Who is making a request: a signed-in patron or staff member, as a plain value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Principal:
    kind: Literal["patron", "staff"]
    id: int
    uuid: str
    name: str
    language: str
    role: str | None = None
    branch_ids: frozenset[int] = field(default_factory=frozenset)
    all_branches: bool = False
    children_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"

    @property
    def is_patron(self) -> bool:
        return self.kind == "patron"

    @property
    def is_administrator(self) -> bool:
        return self.is_staff and self.role == "administrator"

    @property
    def audit_name(self) -> str:
        return f"{self.kind}:{self.uuid}"

    def works_for(self, branch_id: int) -> bool:
        return self.is_staff and (self.all_branches or branch_id in self.branch_ids)
