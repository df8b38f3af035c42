"""Request and response types of the accounts API (msgspec: strict, fast, OpenAPI-friendly)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import msgspec


class SignIn(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["patron", "staff"]
    login: str  # reader card number, or staff username
    secret: str  # PIN, or password


class Person(msgspec.Struct):
    uuid: str
    card_number: str
    name: str
    category: str
    age: int | None
    home_branch: str | None
    expires_on: dt.date
    expired: bool
    blocked: bool
    block_reason: str | None


class Me(msgspec.Struct):
    kind: Literal["patron", "staff"]
    uuid: str
    name: str
    role: str | None = None
    all_branches: bool = False
    card: Person | None = None
    children: list[Person] = []
    guardians: list[str] = []

    @classmethod
    def for_household(cls, household: dict[str, Any]) -> Me:
        me = household["me"]
        return cls(
            kind="patron",
            uuid=me["uuid"],
            name=me["name"],
            card=_person(me),
            children=[_person(child) for child in household["children"]],
            guardians=household["guardians"],
        )


def _person(view: dict[str, Any]) -> Person:
    return Person(
        uuid=view["uuid"],
        card_number=view["card_number"],
        name=view["name"],
        category=view["category"],
        age=view["age"],
        home_branch=view["home_branch"],
        expires_on=view["expires_on"],
        expired=view["expired"],
        blocked=view["block_reason"] is not None,
        block_reason=view["block_reason"],
    )
