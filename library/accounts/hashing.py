"""Slow hashes for PINs and passwords (Argon2id), computed off the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified when the account does not exist, so a wrong card number costs the same
# time as a wrong PIN and does not reveal which cards exist.
_DUMMY_HASH = _hasher.hash("not-a-real-secret")


def hash_secret_sync(secret: str) -> str:
    return _hasher.hash(secret)


async def hash_secret(secret: str) -> str:
    return await asyncio.to_thread(_hasher.hash, secret)


def _verify(stored_hash: str | None, secret: str) -> bool:
    # An empty verifier is a reader whose PIN this node was not given (a branch box holds only
    # the verifiers it needs): like an unknown card, never a match, in the same time.
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, secret) and bool(stored_hash)
    except (VerificationError, InvalidHashError):
        return False


async def verify_secret(stored_hash: str | None, secret: str) -> bool:
    return await asyncio.to_thread(_verify, stored_hash, secret)
