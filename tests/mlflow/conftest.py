"""The MLflow client against a live server of the registry (pytest-django's live_server, on loopback).

The client never reaches out: its telemetry is off, its retries are off (an answer is final), and the
suite's loopback-only name resolution (tests/conftest.py) stands behind that.
"""

import os

import pytest

# Before the client is imported anywhere: MLflow reads these when it starts.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "30"


@pytest.fixture(autouse=True)
def _close_client_connections():
    """After each test, the client's pooled HTTP connections are closed: a kept-alive connection keeps its
    live-server thread, and that thread's database connection, open past the end of the suite."""
    yield
    import gc

    import requests
    from mlflow.utils import request_utils

    # The client caches its sessions (an lru_cache, which cannot list its values): find them and close them.
    for found in gc.get_objects():
        if issubclass(type(found), requests.Session):  # type(): never evaluates a lazy object
            found.close()
    request_utils._cached_get_request_session.cache_clear()


@pytest.fixture
def mlflow_uri(live_server, monkeypatch):
    """The registry as the MLflow client's registry and tracking URI; the token is set per client."""
    uri = f"{live_server.url}/mlflow"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    return uri


@pytest.fixture
def mlflow_client(mlflow_uri, monkeypatch):
    """mlflow_client(token) is an MlflowClient presenting token as MLFLOW_TRACKING_TOKEN (Bearer)."""
    from mlflow import MlflowClient

    def make(token: str):
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
        return MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)

    return make
