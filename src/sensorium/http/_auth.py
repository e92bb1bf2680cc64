"""`/api/v1/auth`: login, refresh, logout.

Login answers `{access_token, refresh_token, token_type, expires_in}`. Passwords are
checked with argon2id in a worker thread, one at a time (a login costs tens of
milliseconds of CPU, which must not stall the event loop that runs ingest); an unknown
email costs the same as a wrong password, so timing does not tell which emails exist.
Failed attempts are throttled per account and per client address (429, Retry-After).
"""

from __future__ import annotations

from dataclasses import dataclass

import trio
from pydantic import BaseModel, Field
from quart import Blueprint, Response, jsonify, request
from quart_schema import document_request, document_response

from sensorium.config import AuthSettings
from sensorium.http._guard import NO_CONTROL, read_body, unauthorized
from sensorium.http._limits import FailureWindow, retry_after_header
from sensorium.http._problem import problem
from sensorium.http._schemas import TokenPair
from sensorium.http._tokens import AccessTokens
from sensorium.storage import (
    Pool,
    RefreshRefused,
    User,
    find_login,
    hash_password,
    issue_refresh_token,
    revoke_refresh_family,
    rotate_refresh_token,
    verify_password,
)

__all__ = ["AuthApi", "LoginRequest", "RefreshRequest", "auth_blueprint"]

# Checked when the email is unknown, so that both paths cost one argon2 verification.
_DECOY_HASH = hash_password("sensorium-decoy-password")


class LoginRequest(BaseModel):
    email: str = Field(min_length=3, max_length=254, pattern=NO_CONTROL)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=256)


@dataclass
class AuthApi:
    pool: Pool
    tokens: AccessTokens
    settings: AuthSettings

    def __post_init__(self) -> None:
        self.per_account = FailureWindow(
            self.settings.login_attempts_per_account, self.settings.login_window_s
        )
        self.per_address = FailureWindow(
            self.settings.login_attempts_per_address, self.settings.login_window_s
        )
        self.hashing = trio.CapacityLimiter(1)

    def token_response(self, user: User, refresh_token: str) -> Response:
        response = jsonify(
            access_token=self.tokens.issue(user),
            refresh_token=refresh_token,
            token_type="Bearer",
            expires_in=self.tokens.ttl_s,
        )
        response.headers["Cache-Control"] = "no-store"
        return response


def _throttled(seconds: float, who: str) -> Response:
    return problem(
        429,
        "Too Many Requests",
        kind="login-throttled",
        detail=f"too many failed logins for this {who}; wait before trying again",
        headers={"Retry-After": retry_after_header(seconds)},
    )


def auth_blueprint(api: AuthApi) -> Blueprint:
    bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")

    @bp.post("/login")
    @document_response(TokenPair)
    @document_request(LoginRequest)
    async def login() -> Response:
        body = await read_body(LoginRequest)
        if isinstance(body, Response):
            return body
        account = body.email.lower()
        address = request.remote_addr or "unknown"
        for window, key, who in (
            (api.per_address, address, "address"),
            (api.per_account, account, "account"),
        ):
            wait = window.retry_after(key)
            if wait is not None:
                return _throttled(wait, who)
        async with api.pool.acquire() as conn:
            record = await find_login(conn, account)
        stored = record.password_hash if record is not None else _DECOY_HASH
        valid = await trio.to_thread.run_sync(
            verify_password, body.password, stored, limiter=api.hashing
        )
        if record is None or not valid or record.disabled:
            api.per_account.record_failure(account)
            api.per_address.record_failure(address)
            return unauthorized("wrong email or password")
        api.per_account.forget(account)
        async with api.pool.acquire() as conn:
            refresh_token = await issue_refresh_token(
                conn, record.user.id, ttl_s=api.settings.refresh_ttl_s
            )
        return api.token_response(record.user, refresh_token)

    @bp.post("/refresh")
    @document_response(TokenPair)
    @document_request(RefreshRequest)
    async def refresh() -> Response:
        body = await read_body(RefreshRequest)
        if isinstance(body, Response):
            return body
        try:
            async with api.pool.acquire() as conn:
                user, successor = await rotate_refresh_token(
                    conn, body.refresh_token, ttl_s=api.settings.refresh_ttl_s
                )
        except RefreshRefused as exc:
            return unauthorized(str(exc))
        return api.token_response(user, successor)

    @bp.post("/logout")
    @document_request(RefreshRequest)
    async def logout() -> Response:
        body = await read_body(RefreshRequest)
        if isinstance(body, Response):
            return body
        async with api.pool.acquire() as conn:
            await revoke_refresh_family(conn, body.refresh_token)
        return Response(b"", status=204)

    return bp
