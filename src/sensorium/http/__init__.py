"""The HTTP front: quart-trio on hypercorn's trio worker."""

from sensorium.http._accounts import accounts_blueprint
from sensorium.http._alerts import AlertRuleCreate, AlertRuleUpdate, alerts_blueprint
from sensorium.http._analytics import analytics_blueprint
from sensorium.http._app import create_app
from sensorium.http._auth import AuthApi, auth_blueprint
from sensorium.http._devices import devices_blueprint
from sensorium.http._exports import exports_blueprint
from sensorium.http._guard import Guard
from sensorium.http._health import HealthCheck
from sensorium.http._ingest import IngestOptions, ingest_blueprint
from sensorium.http._problem import problem
from sensorium.http._tokens import AccessTokens, InvalidAccessToken, Principal

__all__ = [
    "AccessTokens",
    "AlertRuleCreate",
    "AlertRuleUpdate",
    "AuthApi",
    "Guard",
    "HealthCheck",
    "IngestOptions",
    "InvalidAccessToken",
    "Principal",
    "accounts_blueprint",
    "alerts_blueprint",
    "analytics_blueprint",
    "auth_blueprint",
    "create_app",
    "devices_blueprint",
    "exports_blueprint",
    "ingest_blueprint",
    "problem",
]
