"""The HTTP API's logins, tokens, roles and tenants, end to end on the real stack."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import StackHandle, broker_accepts, wait_for

ADMIN = ("admin@example.com", "correct horse battery staple")


def _login(stack: StackHandle, email: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{stack.http_url}/api/v1/auth/login", json={"email": email, "password": password}
    )


def _tokens(stack: StackHandle, email: str, password: str) -> dict[str, Any]:
    response = _login(stack, email, password)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _user(stack: StackHandle, role: str, tenant: str) -> tuple[str, str]:
    email = f"{role}-{secrets.token_hex(4)}@{tenant}.example.com"
    password = secrets.token_urlsafe(12)
    stack.cli(
        "user", "create", "--email", email, "--role", role, "--tenant", tenant,
        "--password", password,
    )  # fmt: skip
    return email, password


def _api(stack: StackHandle, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{stack.http_url}/api/v1{path}", headers=_auth(token), **kwargs)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "sensorium",
        "aud": "sensorium-api",
        "sub": "1",
        "tid": 1,
        "role": "admin",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return claims


def _assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("https://")
    return body


def test_login_gives_tokens_that_open_the_api(stack: StackHandle) -> None:
    tokens = _tokens(stack, *ADMIN)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert (claims["iss"], claims["aud"], claims["role"]) == ("sensorium", "sensorium-api", "admin")
    assert claims["exp"] - claims["iat"] == 900
    listed = _api(stack, "GET", "/devices", tokens["access_token"])
    assert listed.status_code == 200
    assert "items" in listed.json()


def test_wrong_password_and_unknown_email_are_401_alike(stack: StackHandle) -> None:
    wrong = _assert_problem(_login(stack, ADMIN[0], "not the password"), 401)
    unknown = _assert_problem(_login(stack, "nobody@example.com", "whatever"), 401)
    assert wrong["detail"] == unknown["detail"] == "wrong email or password"
    _assert_problem(httpx.post(f"{stack.http_url}/api/v1/auth/login", content=b"{not json"), 400)
    missing = _assert_problem(
        httpx.post(f"{stack.http_url}/api/v1/auth/login", json={"email": "a@b.c"}), 400
    )
    assert "password" in missing["detail"]


def test_tokens_that_must_be_refused(stack: StackHandle) -> None:
    secret = stack.secrets["jwt_secret"]
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(_claims()).encode()).rstrip(b"=").decode()
    refused = {
        "expired": jwt.encode(_claims(iat=1, exp=2), secret, algorithm="HS256"),
        "alg none": f"{header}.{payload}.",
        "RS256, not our algorithm": jwt.encode(_claims(), private, algorithm="RS256"),
        # The classic confusion: HS256 keyed with a public key (here a stranger's).
        "HS256 keyed with a public key": _hs256_raw(_claims(), public_pem),
        "wrong audience": jwt.encode(_claims(aud="someone-else"), secret, algorithm="HS256"),
        "wrong issuer": jwt.encode(_claims(iss="evil"), secret, algorithm="HS256"),
        "no exp": jwt.encode(
            {k: v for k, v in _claims().items() if k != "exp"}, secret, algorithm="HS256"
        ),
        "another secret": jwt.encode(_claims(), "x" * 48, algorithm="HS256"),
        "garbage": "not-a-token",
    }
    for name, token in refused.items():
        body = _assert_problem(_api(stack, "GET", "/devices", token), 401)
        if name == "expired":
            assert "expired" in body["detail"]
    _assert_problem(httpx.get(f"{stack.http_url}/api/v1/devices"), 401)
    # The same claims, correctly signed, pass: the refusals above were about the token.
    good = jwt.encode(_claims(), secret, algorithm="HS256")
    assert _api(stack, "GET", "/devices", good).status_code == 200


def _hs256_raw(claims: dict[str, Any], key: bytes) -> str:
    """PyJWT refuses to HMAC with a PEM key; an attacker would not: sign by hand."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(json.dumps(claims).encode())
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(signature)).decode()


def test_viewer_reads_but_cannot_write(stack: StackHandle) -> None:
    email, password = _user(stack, "viewer", "roles")
    token = _tokens(stack, email, password)["access_token"]
    assert _api(stack, "GET", "/devices", token).status_code == 200
    _assert_problem(_api(stack, "POST", "/devices", token, json={"name": "nope"}), 403)
    operator = _tokens(stack, *_user(stack, "operator", "roles"))["access_token"]
    created = _api(stack, "POST", "/devices", operator, json={"name": "made", "tags": ["a"]})
    assert created.status_code == 201, created.text
    device = created.json()
    assert set(device) == {"id", "name", "tenant_id", "token", "tags"}
    for method, path, body in (
        ("PATCH", f"/devices/{device['id']}", {"name": "renamed"}),
        ("DELETE", f"/devices/{device['id']}", None),
        ("POST", f"/devices/{device['id']}/token", None),
    ):
        _assert_problem(_api(stack, method, path, token, json=body), 403)
    seen = _api(stack, "GET", f"/devices/{device['id']}", token).json()
    assert (seen["name"], seen["tags"]) == ("made", ["a"])
    assert "token" not in seen


def test_another_tenants_device_is_404_on_every_route(stack: StackHandle) -> None:
    owner = _tokens(stack, *_user(stack, "admin", "tenant-a"))["access_token"]
    stranger = _tokens(stack, *_user(stack, "admin", "tenant-b"))["access_token"]
    device = _api(stack, "POST", "/devices", owner, json={"name": "mine"}).json()
    path = f"/devices/{device['id']}"
    for method, sub, body in (
        ("GET", "", None),
        ("PATCH", "", {"name": "stolen"}),
        ("DELETE", "", None),
        ("POST", "/token", None),
    ):
        _assert_problem(_api(stack, method, path + sub, stranger, json=body), 404)
    listed = _api(stack, "GET", "/devices", stranger).json()["items"]
    assert device["id"] not in {d["id"] for d in listed}
    # Untouched by all that.
    assert _api(stack, "GET", path, owner).json()["name"] == "mine"


def test_device_crud_and_paging(stack: StackHandle) -> None:
    token = _tokens(stack, *_user(stack, "admin", "paging"))["access_token"]
    made = [
        _api(stack, "POST", "/devices", token, json={"name": f"d{i}", "tags": [f"t{i % 2}"]}).json()
        for i in range(5)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = _api(stack, "GET", "/devices", token, params=params).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [d["id"] for d in made]
    tagged = _api(stack, "GET", "/devices", token, params={"tag": "t0"}).json()["items"]
    assert [d["name"] for d in tagged] == ["d0", "d2", "d4"]
    patched = _api(
        stack, "PATCH", f"/devices/{made[0]['id']}", token, json={"tags": ["x", "x", "b"]}
    )
    assert patched.json()["tags"] == ["b", "x"]
    _assert_problem(
        _api(stack, "PATCH", f"/devices/{made[0]['id']}", token, json={"tags": ["no spaces"]}), 400
    )
    _assert_problem(_api(stack, "GET", "/devices", token, params={"limit": "0"}), 400)
    _assert_problem(_api(stack, "GET", "/devices", token, params={"cursor": "%%%"}), 400)
    assert _api(stack, "DELETE", f"/devices/{made[1]['id']}", token).status_code == 204
    _assert_problem(_api(stack, "GET", f"/devices/{made[1]['id']}", token), 404)


def test_refresh_rotates_and_reuse_revokes_the_family(stack: StackHandle) -> None:
    email, password = _user(stack, "viewer", "refresh")
    first = _tokens(stack, email, password)

    def refresh(token: str) -> httpx.Response:
        return httpx.post(f"{stack.http_url}/api/v1/auth/refresh", json={"refresh_token": token})

    second = refresh(first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert _api(stack, "GET", "/devices", rotated["access_token"]).status_code == 200
    # The first token again: reuse. It fails, and so does its successor from now on.
    reused = _assert_problem(refresh(first["refresh_token"]), 401)
    assert "reused" in reused["detail"]
    _assert_problem(refresh(rotated["refresh_token"]), 401)
    # A new login starts a new family; logout ends it.
    fresh = _tokens(stack, email, password)
    out = httpx.post(
        f"{stack.http_url}/api/v1/auth/logout", json={"refresh_token": fresh["refresh_token"]}
    )
    assert out.status_code == 204
    _assert_problem(refresh(fresh["refresh_token"]), 401)
    _assert_problem(refresh("never-issued"), 401)


def test_failed_logins_are_throttled_per_account(stack: StackHandle) -> None:
    email, password = _user(stack, "viewer", "throttle")
    for _ in range(5):
        _assert_problem(_login(stack, email, "wrong"), 401)
    throttled = _assert_problem(_login(stack, email, password), 429)
    assert throttled["type"].endswith("/login-throttled")
    assert int(_login(stack, email, password).headers["Retry-After"]) >= 1
    # Another account from the same address is not locked out.
    other = _user(stack, "viewer", "throttle")
    assert _login(stack, *other).status_code == 200


@pytest.mark.parametrize("change", ["delete", "rotate"])
def test_a_deleted_or_rotated_device_can_no_longer_publish(stack: StackHandle, change: str) -> None:
    token = _tokens(stack, *ADMIN)["access_token"]
    device = _api(stack, "POST", "/devices", token, json={"name": f"to-{change}"}).json()
    mqtt_port = stack.ports["mqtt"]
    wait_for(lambda: broker_accepts(mqtt_port, device["id"], device["token"]), timeout=15)

    def http_publish(device_token: str) -> int:
        return httpx.post(
            f"{stack.http_url}/api/v1/telemetry",
            headers=_auth(device_token),
            json={"ts": int(time.time() * 1000), "metrics": {"temperature": 1.0}},
        ).status_code

    assert http_publish(device["token"]) == 200
    if change == "delete":
        assert _api(stack, "DELETE", f"/devices/{device['id']}", token).status_code == 204
    else:
        rotated = _api(stack, "POST", f"/devices/{device['id']}/token", token)
        assert rotated.status_code == 200
        new_token = rotated.json()["token"]
    wait_for(lambda: http_publish(device["token"]) == 401, timeout=15)
    wait_for(lambda: not broker_accepts(mqtt_port, device["id"], device["token"]), timeout=15)
    if change == "rotate":
        assert http_publish(new_token) == 200
        wait_for(lambda: broker_accepts(mqtt_port, device["id"], new_token), timeout=15)


def test_the_api_left_no_unhandled_error_in_the_engine_log(stack: StackHandle) -> None:
    """Runs after the tests above: an error that escapes a handler (an empty 204 body
    once did, through quart's sync-iterable path) must not be in the log, and the
    engine must still serve."""
    token = _tokens(stack, *ADMIN)["access_token"]
    device = _api(stack, "POST", "/devices", token, json={"name": "short-lived"}).json()
    assert _api(stack, "DELETE", f"/devices/{device['id']}", token).status_code == 204
    time.sleep(1.0)  # an unretrieved future is reported when it is collected
    log = (stack.state_dir / "logs" / "sensorium.log").read_text()
    for marker in ("Error in ASGI Framework", "unhandled error", "nobody handled"):
        assert marker not in log
    assert httpx.get(f"{stack.http_url}/healthz").status_code == 200


def test_tenants_and_users(stack: StackHandle) -> None:
    platform = _tokens(stack, *ADMIN)["access_token"]
    name = f"acme-{secrets.token_hex(3)}"
    admin_email = f"boss@{name}.example.com"
    created = _api(
        stack,
        "POST",
        "/tenants",
        platform,
        json={"name": name, "admin_email": admin_email, "admin_password": "a long password!"},
    )
    assert created.status_code == 201, created.text
    tenant = created.json()
    assert _api(stack, "POST", "/tenants", platform, json={
        "name": name, "admin_email": "x@y.z", "admin_password": "a long password!"
    }).status_code == 409  # fmt: skip
    boss = _tokens(stack, admin_email, "a long password!")["access_token"]
    # The new tenant's admin sees only its tenant, and cannot make tenants.
    assert [t["name"] for t in _api(stack, "GET", "/tenants", boss).json()["items"]] == [name]
    _assert_problem(
        _api(stack, "POST", "/tenants", boss, json={
            "name": "x" + name, "admin_email": "a@b.c", "admin_password": "a long password!"
        }),
        403,
    )  # fmt: skip
    assert name in {t["name"] for t in _api(stack, "GET", "/tenants", platform).json()["items"]}
    # Users: made by the tenant's admin, in the tenant, listed only there.
    made = _api(
        stack,
        "POST",
        "/users",
        boss,
        json={
            "email": f"eve@{name}.example.com",
            "password": "another long one",
            "role": "operator",
        },
    )
    assert made.status_code == 201, made.text
    assert made.json()["tenant_id"] == tenant["id"]
    emails = {u["email"] for u in _api(stack, "GET", "/users", boss).json()["items"]}
    assert emails == {admin_email, f"eve@{name}.example.com"}
    assert f"eve@{name}.example.com" not in {
        u["email"] for u in _api(stack, "GET", "/users", platform).json()["items"]
    }
    again = _api(stack, "POST", "/users", boss, json={
        "email": f"EVE@{name}.example.com", "password": "another long one"
    })  # fmt: skip
    _assert_problem(again, 409)
    short = _api(stack, "POST", "/users", boss, json={"email": "a@b.c", "password": "short"})
    assert "password" in _assert_problem(short, 400)["detail"]
    eve = _tokens(stack, f"eve@{name}.example.com", "another long one")["access_token"]
    _assert_problem(_api(stack, "GET", "/users", eve), 403)


def test_one_device_past_its_request_rate_gets_429_with_retry_after(stack: StackHandle) -> None:
    device = stack.create_device("chatty")
    body = {"ts": int(time.time() * 1000), "metrics": {"temperature": 1.0}}

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return list(
                await asyncio.gather(
                    *(
                        client.post(
                            f"{stack.http_url}/api/v1/telemetry",
                            headers=_auth(device["token"]),
                            json=body,
                        )
                        for _ in range(80)
                    )
                )
            )

    answers = asyncio.run(burst())
    codes = sorted({a.status_code for a in answers})
    assert codes == [200, 429], codes
    limited = next(a for a in answers if a.status_code == 429)
    assert limited.json()["type"].endswith("/rate-limited")
    assert int(limited.headers["Retry-After"]) >= 1
    # The default allows 20 a second with bursts of 40: at most 40 got through at once.
    assert sum(a.status_code == 200 for a in answers) <= 45
    time.sleep(int(limited.headers["Retry-After"]))
    again = httpx.post(
        f"{stack.http_url}/api/v1/telemetry", headers=_auth(device["token"]), json=body
    )
    assert again.status_code == 200
