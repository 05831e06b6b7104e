"""The app without its operations middleware (metrics, request IDs), for `run.py
--middleware-cost`: the same routes, database and settings, minus the two layers measured."""

from logs import RequestIdMiddleware
from main import app
from metrics import MetricsMiddleware

MEASURED = (MetricsMiddleware, RequestIdMiddleware)
app.user_middleware = [layer for layer in app.user_middleware if layer.cls not in MEASURED]
