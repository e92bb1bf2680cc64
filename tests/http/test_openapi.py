"""The API describes itself: OpenAPI 3.1 at /openapi.json with every public route and
the request and response schemas, and a docs page."""

from __future__ import annotations

import httpx

from tests.support import StackHandle

PUBLIC = {
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/tenants"),
    ("post", "/api/v1/tenants"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("get", "/api/v1/devices"),
    ("post", "/api/v1/devices"),
    ("get", "/api/v1/devices/{device_id}"),
    ("patch", "/api/v1/devices/{device_id}"),
    ("delete", "/api/v1/devices/{device_id}"),
    ("post", "/api/v1/devices/{device_id}/token"),
    ("post", "/api/v1/telemetry"),
    ("get", "/api/v1/devices/{device_id}/latest"),
    ("get", "/api/v1/devices/{device_id}/telemetry"),
    ("get", "/api/v1/fleet/summary"),
    ("get", "/api/v1/dead-letters"),
    ("get", "/api/v1/alert-rules"),
    ("post", "/api/v1/alert-rules"),
    ("get", "/api/v1/alert-rules/{rule_id}"),
    ("patch", "/api/v1/alert-rules/{rule_id}"),
    ("delete", "/api/v1/alert-rules/{rule_id}"),
    ("get", "/api/v1/alerts"),
    ("post", "/api/v1/alerts/{alert_id}/ack"),
    ("get", "/api/v1/alerts/{alert_id}/history"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
}


def test_openapi_lists_every_public_route_with_its_request_schema(stack: StackHandle) -> None:
    response = httpx.get(f"{stack.http_url}/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.1")
    routes = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert routes >= PUBLIC, PUBLIC - routes
    login = spec["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"]
    schema = login["application/json"]["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert set(schema["required"]) == {"email", "password"}
    query = spec["paths"]["/api/v1/devices/{device_id}/telemetry"]["get"]["parameters"]
    assert {"metric", "from", "to", "bucket", "agg"} <= {p["name"] for p in query}
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    # Every answer with a body has its shape documented.
    for (method, path), status in {
        ("post", "/api/v1/auth/login"): "200",
        ("get", "/api/v1/devices"): "200",
        ("post", "/api/v1/devices"): "201",
        ("get", "/api/v1/devices/{device_id}/telemetry"): "200",
        ("get", "/api/v1/fleet/summary"): "200",
        ("post", "/api/v1/telemetry"): "200",
    }.items():
        documented = spec["paths"][path][method]["responses"][status]["content"]
        assert "schema" in documented["application/json"], (method, path)


def test_docs_page_is_served(stack: StackHandle) -> None:
    response = httpx.get(f"{stack.http_url}/docs")
    assert response.status_code == 200
    assert "openapi.json" in response.text
