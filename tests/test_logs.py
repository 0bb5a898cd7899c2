"""Logs: JSON lines carrying the request id of the response and the audit event; 4xx at INFO, 5xx at ERROR."""

import io
import json
import logging
import logging.config

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import path

from audit.models import AuditEvent
from config.settings.base import logging_config
from config.urls import urlpatterns as product_urls
from core.source import Channel

pytestmark = pytest.mark.django_db


def boom(request):
    raise RuntimeError("the view failed")


urlpatterns = [path("test-boom", boom), *product_urls]
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"


@pytest.fixture
def json_logs():
    """The production logging configuration (JSON), writing to a buffer; the lines parsed on demand."""
    stream = io.StringIO()
    config = logging_config("json", "INFO")
    config["handlers"]["console"]["stream"] = stream
    logging.config.dictConfig(config)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    logging.config.dictConfig(django_settings.LOGGING)


def test_a_404_is_logged_at_info_with_the_request_id(client, json_logs):
    response = client.get("/api/v1/no/such/thing")
    assert response.status_code == 404
    [line] = [line for line in json_logs() if line["logger"] == "django.request"]
    assert line["level"] == "INFO"
    assert line["status_code"] == 404
    assert line["request_id"] == response["X-Request-ID"]
    assert line["message"] == "Not Found: /api/v1/no/such/thing"
    assert {"timestamp", "message", "request_id"} <= set(line)


@pytest.mark.urls(__name__)
def test_a_5xx_is_logged_at_error_with_the_request_id_and_traceback(json_logs):
    response = Client(raise_request_exception=False).get("/test-boom", HTTP_X_REQUEST_ID="crash-1")
    assert response.status_code == 500
    [line] = [line for line in json_logs() if line["logger"] == "django.request"]
    assert (line["level"], line["request_id"], line["status_code"]) == ("ERROR", "crash-1", 500)
    assert "RuntimeError: the view failed" in line["exc_info"]


def test_application_log_lines_carry_the_id_of_the_audit_event(api, json_logs, monkeypatch):
    """A line logged while a change is made carries the id that the change's audit event stores."""
    from registry import services

    original = services.audit_record

    def logged(**kwargs):
        logging.getLogger("registry.services").info("recording %s", kwargs["action"])
        return original(**kwargs)

    monkeypatch.setattr(services, "audit_record", logged)
    response = api.post("/api/v1/models", {"name": "logged-model"}, format="json")
    assert response.status_code == 201, response.content
    [line] = [line for line in json_logs() if line["logger"] == "registry.services"]
    event = AuditEvent.objects.filter(source=Channel.API).latest("seq")
    assert line["request_id"] == response["X-Request-ID"] == event.context["request_id"]


def test_log_lines_outside_requests_have_an_empty_id(json_logs):
    logging.getLogger("tests").warning("no request here")
    [line] = json_logs()
    assert (line["level"], line["request_id"], line["message"]) == ("WARNING", "", "no request here")


def test_the_log_format_is_checked():
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="DJANGO_LOG_FORMAT must be json or text"):
        logging_config("xml", "INFO")
