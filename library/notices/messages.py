"""What a notice says: each domain's messages, composed in the reader's language.

A domain defines its `Message`s and registers them here, so that the reader's page of choices
(library/notices/controllers.py) can list the kinds a reader may turn off, and the worker's
report can tell queued notices from other counts. This package knows no domain's messages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from library.i18n import N_, current_language, format_date, translations

SIGNATURE = N_("Jiaxing Library")


@dataclass(frozen=True)
class Message:
    kind: str  # at most 32 characters: Notice.kind
    subject: str  # English message ids (N_), formatted with the notice's params
    body: str
    # A reader may turn this kind off on /account/notices; `label` names it there.
    choosable: bool = False
    label: str = ""


@dataclass(frozen=True)
class Localized:
    """A value written in both languages (a session's title): the notice takes the reader's."""

    zh: str
    en: str

    def in_language(self, language: str) -> str:
        return (self.en or self.zh) if language == "en" else (self.zh or self.en)


MESSAGES: dict[str, Message] = {}


def register(*messages: Message) -> None:
    for message in messages:
        if len(message.kind) > 32:
            raise ValueError(f"notice kind too long: {message.kind}")
        known = MESSAGES.get(message.kind)
        if known is not None and known != message:
            raise ValueError(f"two messages of kind {message.kind}")
        MESSAGES[message.kind] = message


def choosable() -> list[Message]:
    """The kinds a reader may turn off, in the order they were registered."""
    return [message for message in MESSAGES.values() if message.choosable]


def compose(message: Message, language: str, **params: Any) -> tuple[str, str]:
    """Subject and body in the reader's language (dates formatted for it too)."""
    token = current_language.set(language)
    try:
        catalog = translations(language)
        values = {key: format_date(value) if isinstance(value, dt.date)
                  else value.in_language(language) if isinstance(value, Localized)
                  else value for key, value in params.items()}
        values.setdefault("library", catalog.gettext(SIGNATURE))
        return catalog.gettext(message.subject).format(**values), catalog.gettext(message.body).format(**values)
    finally:
        current_language.reset(token)
