"""The HTTP front: quart-trio on hypercorn's trio worker."""

from sensorium.http._app import create_app
from sensorium.http._health import HealthCheck
from sensorium.http._ingest import IngestOptions, ingest_blueprint
from sensorium.http._problem import problem

__all__ = ["HealthCheck", "IngestOptions", "create_app", "ingest_blueprint", "problem"]
