"""JWT access tokens of the HTTP API.

One algorithm is configured and it is the only one accepted: a token claiming `none`,
or HS256 signed with our RS256 public key as the secret, fails at the header. `iss`,
`aud`, `exp`, `iat` and `sub` are required and checked. The token carries the user,
tenant and role, so a request costs no database round trip to authorise (a role change
or a disabled user takes effect within `access_ttl_s`).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from sensorium.config import AuthSettings
from sensorium.errors import ConfigError
from sensorium.storage import ROLES, Role, User

__all__ = ["AccessTokens", "InvalidAccessToken", "Principal"]


class InvalidAccessToken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the user of a verified access token."""

    user_id: int
    tenant_id: int
    role: Role


class AccessTokens:
    def __init__(self, settings: AuthSettings) -> None:
        self._algorithm = settings.jwt_algorithm
        self._issuer = settings.issuer
        self._audience = settings.audience
        self.ttl_s = settings.access_ttl_s
        if self._algorithm == "HS256":
            secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
            if len(secret.encode()) < 32:
                raise ConfigError(
                    "SENSORIUM_AUTH__JWT_SECRET must be set, at least 32 bytes, for HS256"
                )
            self._signing_key: Any = secret
            self._verifying_key: Any = secret
        else:
            if not settings.jwt_private_key_file or not settings.jwt_public_key_file:
                raise ConfigError(
                    f"{self._algorithm} needs SENSORIUM_AUTH__JWT_PRIVATE_KEY_FILE and "
                    "SENSORIUM_AUTH__JWT_PUBLIC_KEY_FILE"
                )
            self._signing_key = settings.jwt_private_key_file.read_text()
            self._verifying_key = settings.jwt_public_key_file.read_text()

    def issue(self, user: User) -> str:
        now = int(time.time())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user.id),
            "tid": user.tenant_id,
            "role": user.role,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(claims, self._signing_key, algorithm=self._algorithm)

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._verifying_key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidAccessToken("access token expired") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidAccessToken(f"invalid access token: {exc}") from None
        role, tenant, subject = claims.get("role"), claims.get("tid"), claims["sub"]
        if role not in ROLES or not isinstance(tenant, int) or not str(subject).isdigit():
            raise InvalidAccessToken("invalid access token: bad claims")
        return Principal(user_id=int(subject), tenant_id=tenant, role=role)
