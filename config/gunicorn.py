"""gunicorn settings for the web process (Procfile), from the environment.

GUNICORN_BIND (default 127.0.0.1:$PORT, PORT 8000 unless honcho sets it), WEB_CONCURRENCY (workers,
default 2), GUNICORN_TIMEOUT (seconds one request may take before its sync worker is replaced, default 30).
GUNICORN_CMD_ARGS adds any other gunicorn option.
"""

import os

bind = os.environ.get("GUNICORN_BIND") or f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
# The access log names each request by the id that its log lines and audit events carry.
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'


def child_exit(server, worker):
    """prometheus_client's multiprocess mode: an exited worker's live gauges no longer count."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
