"""Secrets as they are stored: device tokens, broker passwords, user passwords.

Device tokens are 256-bit random strings, so a plain SHA-256 is enough to store them
(nothing to brute-force) and lets the HTTP edge find a device by its token's hash in
one index lookup. The broker checks the same token itself, so the device row also keeps
it in Mosquitto's own password-file format (PBKDF2-SHA512, ``$7$``). User passwords
are chosen by people and get argon2id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "hash_password",
    "hash_token",
    "mosquitto_password_hash",
    "new_device_id",
    "new_secret",
    "verify_mosquitto_password",
    "verify_password",
]

# Mosquitto 2.0's mosquitto_passwd defaults: 12 bytes of salt, 101 iterations.
_MOSQUITTO_ITERATIONS = 101
_MOSQUITTO_SALT_BYTES = 12
_argon2 = PasswordHasher()


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random string (also safe inside a postgresql:// URL)."""
    return secrets.token_urlsafe(nbytes)


def new_device_id() -> str:
    """A server-made device id: unique, and matching ``^[A-Za-z0-9_-]{1,64}$``."""
    return "dev-" + secrets.token_urlsafe(12)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def mosquitto_password_hash(password: str, *, salt: bytes | None = None) -> str:
    """The ``$7$`` line Mosquitto's password file expects for this password."""
    salt = salt if salt is not None else secrets.token_bytes(_MOSQUITTO_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _MOSQUITTO_ITERATIONS)
    encoded_salt = base64.b64encode(salt).decode()
    return f"$7${_MOSQUITTO_ITERATIONS}${encoded_salt}${base64.b64encode(digest).decode()}"


def verify_mosquitto_password(password: str, stored: str) -> bool:
    try:
        _, kind, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    computed = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(salt), int(iterations)
    )
    return hmac.compare_digest(computed, base64.b64decode(digest))


def hash_password(password: str) -> str:
    return _argon2.hash(password)


def verify_password(password: str, stored: str) -> bool:
    try:
        return _argon2.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
