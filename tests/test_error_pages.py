"""The app's own error pages, also with DEBUG on (`make run`, config/settings/dev.py): a missing page answers
templates/404.html, a refusal 403.html, a crash 500.html (its traceback still logged), and the API its problem
details. DJANGO_DEBUG_ERROR_PAGES=true brings Django's debug pages back
(core.middleware.AppErrorPagesMiddleware).
"""

import logging

import pytest
from django.test import Client, override_settings
from django.urls import path

from config.urls import urlpatterns as project_urls

pytestmark = pytest.mark.django_db
APP_404 = "There is nothing here, or nothing you may see."
APP_403 = "your roles do not allow this page or action"
APP_500 = "The server failed and changed nothing."
DJANGO_DEBUG_404 = "seeing this error because you have <code>DEBUG = True</code>"


def crash(request):
    raise RuntimeError("the view broke")


# The project's routes plus one that crashes.
urlpatterns = [path("crash/", crash), path("api/v1/crash", crash), *project_urls]
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"


@pytest.fixture
def signed_in(outsider):
    client = Client(raise_request_exception=False)
    client.force_login(outsider)
    return client


@pytest.mark.parametrize("debug", [True, False])
def test_a_missing_page_answers_the_apps_404_page(signed_in, debug):
    with override_settings(DEBUG=debug):
        for url in ("/no/such/page/", "/promotions/999999/", "/registry/model/nope/", "/policies/424242/"):
            response = signed_in.get(url)
            assert response.status_code == 404, url
            body = response.content.decode()
            assert APP_404 in body and DJANGO_DEBUG_404 not in body, url
            assert "Model registry" in body and "olly" in body  # the app's layout, signed in


@pytest.mark.parametrize("debug", [True, False])
def test_an_unknown_api_path_answers_the_not_found_problem(signed_in, debug):
    with override_settings(DEBUG=debug):
        response = signed_in.get("/api/v1/no-such-route")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "not-found"


@override_settings(DEBUG=True)
def test_a_refusal_answers_the_apps_403_page(signed_in):
    response = signed_in.get("/access/")
    assert response.status_code == 403
    assert APP_403 in response.content.decode()


@override_settings(DEBUG=True, ROOT_URLCONF=__name__)
def test_a_crash_answers_the_apps_500_page_and_logs_the_traceback(signed_in, caplog):
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = signed_in.get("/crash/")
    assert response.status_code == 500
    body = response.content.decode()
    assert APP_500 in body and "RuntimeError" not in body and "Traceback" not in body
    [record] = [r for r in caplog.records if r.name == "django.request" and r.levelno == logging.ERROR]
    assert record.exc_info[0] is RuntimeError  # the developer's console has the traceback
    api = signed_in.get("/api/v1/crash")
    assert api.status_code == 500 and api.json()["type"] == "server-error"


@override_settings(DEBUG=True, DEBUG_ERROR_PAGES=True, ROOT_URLCONF=__name__)
def test_django_debug_pages_on_request(signed_in):
    assert DJANGO_DEBUG_404 in signed_in.get("/no/such/page/").content.decode()
    crashed = signed_in.get("/crash/")
    assert crashed.status_code == 500 and "RuntimeError" in crashed.content.decode()


@override_settings(DEBUG=True)
def test_append_slash_still_redirects(signed_in):
    response = signed_in.get("/promotions")
    assert response.status_code == 301 and response["Location"] == "/promotions/"
