"""Who may call what: the access token, the caller's role, and the per-user rate limit,
checked in front of every `/api/v1` route that a person (not a device) calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from functools import wraps
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from quart import Response, request

from sensorium.http._limits import TokenBuckets, retry_after_header
from sensorium.http._problem import problem
from sensorium.http._tokens import AccessTokens, InvalidAccessToken
from sensorium.storage import Role

__all__ = [
    "NO_CONTROL",
    "Guard",
    "Handler",
    "bad_request",
    "bearer_token",
    "rate_limited",
    "read_body",
    "unauthorized",
]

# Text that goes into the database: PostgreSQL refuses NUL in text (found by
# schemathesis: a device name with one was a 500), and no name needs control characters.
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
EMAIL = r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$"

Handler = Callable[..., Awaitable[Response]]
Model = TypeVar("Model", bound=BaseModel)


def bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def bad_request(detail: str, **extensions: Any) -> Response:
    return problem(400, "Bad Request", kind="invalid-request", detail=detail, **extensions)


def _nul_at(value: Any, where: str) -> str | None:
    """Where in a parsed JSON document a string (or a key) holds U+0000, if anywhere."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return where
            if (found := _nul_at(item, f"{where}.{key}")) is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (found := _nul_at(item, f"{where}[{index}]")) is not None:
                return found
    return None


async def read_body(model: type[Model]) -> Model | Response:
    """The JSON body as ``model``, or a 400 problem naming the fields at fault."""
    body = await request.get_json(force=True, silent=True)
    if body is None:
        return bad_request("the body must be JSON")
    if (where := _nul_at(body, "body")) is not None:
        # PostgreSQL text and jsonb cannot hold U+0000: refuse it here, by name.
        return bad_request(f"{where}: NUL character")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "reason": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        return bad_request("; ".join(f"{e['field']}: {e['reason']}" for e in errors), errors=errors)


class Guard:
    def __init__(self, tokens: AccessTokens, *, requests_per_s: float) -> None:
        self.tokens = tokens
        self._buckets = TokenBuckets(requests_per_s, burst=max(1.0, 2 * requests_per_s))

    def __call__(
        self, *, roles: Collection[Role] = ("admin", "operator", "viewer")
    ) -> Callable[[Handler], Handler]:
        """Decorates a route: the handler gets the caller as ``principal``."""

        def decorate(handler: Handler) -> Handler:
            @wraps(handler)
            async def guarded(*args: Any, **kwargs: Any) -> Response:
                token = bearer_token()
                if token is None:
                    return unauthorized("send an access token as 'Authorization: Bearer <token>'")
                try:
                    principal = self.tokens.verify(token)
                except InvalidAccessToken as exc:
                    return unauthorized(str(exc))
                structlog.contextvars.bind_contextvars(
                    tenant_id=principal.tenant_id, user_id=principal.user_id
                )
                wait = self._buckets.take(principal.user_id)
                if wait is not None:
                    return rate_limited(wait, "user")
                if principal.role not in roles:
                    return problem(
                        403,
                        "Forbidden",
                        kind="forbidden",
                        detail=f"this needs the role {' or '.join(roles)}",
                    )
                return await handler(*args, principal=principal, **kwargs)

            return guarded

        return decorate


def unauthorized(detail: str, *, realm: str = "sensorium") -> Response:
    return problem(
        401,
        "Unauthorized",
        kind="unauthorized",
        detail=detail,
        headers={"WWW-Authenticate": f'Bearer realm="{realm}"'},
    )


def rate_limited(wait_s: float, who: str) -> Response:
    """429 for a caller (``who``: user, device) past its request rate."""
    return problem(
        429,
        "Too Many Requests",
        kind="rate-limited",
        detail=f"too many requests for this {who}; slow down",
        headers={"Retry-After": retry_after_header(wait_s)},
    )
