"""Prometheus metrics: request latency by route, answers by status class, promotions by outcome, and the
gauges other apps compute when scraped; served at /metrics to a configured token or network only.

Labels are bounded: a request is labelled with the URL pattern it resolved to (`api/v1/models/<str:name>`),
never its raw path, so a scanner walking random paths adds one label value (`unmatched`), not one per path.

Several processes (gunicorn workers, the Celery worker) each count on their own. With PROMETHEUS_MULTIPROC_DIR
set in their environment (before start; prometheus_client reads it at import), they write their samples to
files in that directory and /metrics adds them up (prometheus_client's multiprocess mode; config/gunicorn.py
marks exited workers dead). Without it, each process answers with its own counts only.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

UNMATCHED = "unmatched"

REQUEST_LATENCY = Histogram(
    "registry_http_request_duration_seconds",
    "Time to answer a request, by the URL pattern it resolved to and its method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RESPONSES = Counter(
    "registry_http_responses_total",
    "Answers by the URL pattern the request resolved to and the status class (2xx, 3xx, 4xx, 5xx).",
    ["route", "status_class"],
)
PROMOTIONS = Counter(
    "registry_promotions_total",
    "Promotion events committed, by outcome (requested, approved, rejected, applied, failed, expired, ...).",
    ["outcome"],
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_scrape_collectors: list[Collector] = []


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def register_scrape_collector(collector: Collector) -> None:
    """Add a collector that computes its samples when /metrics is read (e.g. from the database)."""
    _scrape_collectors.append(collector)
    if not multiprocess_mode():
        REGISTRY.register(collector)


def promotion_committed(action: str) -> Callable[[], None]:
    """The on_commit callback that counts one committed promotion event (`promotion.applied` → applied)."""
    outcome = action.removeprefix("promotion.")
    return lambda: PROMOTIONS.labels(outcome=outcome).inc()


def route_of(request) -> str:
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None and match.route else UNMATCHED


class MetricsMiddleware:
    """Times every answer and counts it by route and status class (first in MIDDLEWARE: it times the rest)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        route = route_of(request)
        method = request.method if request.method in _METHODS else "other"
        REQUEST_LATENCY.labels(route=route, method=method).observe(time.perf_counter() - started)
        RESPONSES.labels(route=route, status_class=f"{response.status_code // 100}xx").inc()
        return response


def _allowed(request) -> bool:
    """A scraper shows METRICS_TOKEN as a bearer token, or comes from one of METRICS_ALLOWED_NETWORKS."""
    token = settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network) for network in settings.METRICS_ALLOWED_NETWORKS)


def metrics_view(request):
    """The metrics in Prometheus' text format; 404, like any unknown path, to everyone else."""
    if not _allowed(request):
        raise Http404
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for collector in _scrape_collectors:
            registry.register(collector)
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
