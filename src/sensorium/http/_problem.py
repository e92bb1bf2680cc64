"""RFC 9457 problem details: every error the API returns has this shape."""

from __future__ import annotations

from typing import Any

from quart import Response, json

__all__ = ["PROBLEM_TYPE_BASE", "problem"]

PROBLEM_TYPE_BASE = "https://sensorium.dev/problems/"


def problem(
    status: int,
    title: str,
    *,
    kind: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """A problem+json response; ``kind`` becomes the ``type`` URI's last segment."""
    body: dict[str, Any] = {"type": PROBLEM_TYPE_BASE + kind, "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    body.update(extensions)
    response = Response(json.dumps(body), status=status, content_type="application/problem+json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
