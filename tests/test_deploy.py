"""Production settings: `check --deploy` with the documented environment, refusals at start, HTTPS, CSP,
owner-only files, and checkpoints that only the log's own key may sign.

The production settings are loaded in subprocesses (they are read once per process), with the minimal
environment that docs/operations.md lists: the test follows the document, so the two cannot drift apart.
"""

import json
import os
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db.utils import ConnectionHandler

from audit import signing
from audit.log import WrongSigningKey, checkpoint_make
from audit.models import AuditEvent, Checkpoint, MerkleNode
from config.settings.base import _database
from config.settings.safety import DEV_SECRET_KEY
from tests.factories import AssetFactory

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ROOT / "docs" / "operations.md"


def documented_environment() -> dict[str, str]:
    """The variables of the "minimal production environment" block in docs/operations.md."""
    text = OPERATIONS.read_text()
    block = re.search(r"A minimal production environment.*?```sh\n(.*?)```", text, re.S)
    assert block, "docs/operations.md lists no minimal production environment"
    env = {}
    for line in block.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, value = line.partition("=")
            env[name] = value
    return env


@pytest.fixture
def production_env(tmp_path):
    """The documented environment, with its secret files made in tmp_path (a strong key, a signing key)."""
    env = documented_environment()
    assert env["DJANGO_SETTINGS_MODULE"] == "config.settings.base"
    for name in [name for name in env if name.endswith("_FILE")]:
        path = tmp_path / name.lower()
        if name == "AUDIT_SIGNING_KEY_FILE":
            signing.generate_key_file(path)
        else:
            path.write_text(secrets.token_urlsafe(50))
        env[name] = str(path)
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env}


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_reports_no_issue_with_the_documented_environment(production_env):
    done = run(production_env, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


# Refusals at start -----------------------------------------------------------------------------------

START = "import config.wsgi"  # what gunicorn does first


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DJANGO_DEBUG": "true"}, "DJANGO_DEBUG is on"),
        ({"DJANGO_SECRET_KEY": DEV_SECRET_KEY}, "a development or test key published with the source code"),
        ({"DJANGO_SECRET_KEY": "short-but-set"}, "DJANGO_SECRET_KEY is weak"),
        ({"DJANGO_SECRET_KEY": "ab" * 40}, "DJANGO_SECRET_KEY is weak"),
        (
            {"DJANGO_SECRET_KEY": "django-insecure-" + secrets.token_urlsafe(50)},
            "starts with 'django-insecure",
        ),
        ({"AUDIT_SIGNING_KEY_FILE": "/nonexistent/audit-signing-key.pem"}, "the audit signing key"),
        ({"AUDIT_WITNESS_DIR": ""}, "AUDIT_WITNESS_DIR is not set"),
    ],
)
def test_production_settings_refuse_to_start(production_env, change, message):
    env = {**production_env, **change}
    if "DJANGO_SECRET_KEY" in change:
        env.pop("DJANGO_SECRET_KEY_FILE")
    done = run(env, "-c", START)
    assert done.returncode != 0
    assert "ImproperlyConfigured: Refusing to start with unsafe production settings" in done.stderr
    assert message in done.stderr


def test_the_signing_key_may_be_created_on_first_use_when_asked(production_env, tmp_path):
    key = tmp_path / "new" / "audit-signing-key.pem"
    env = {**production_env, "AUDIT_SIGNING_KEY_FILE": str(key), "AUDIT_SIGNING_KEY_AUTOCREATE": "true"}
    done = run(env, "manage.py", "audit_keygen")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(production_env["AUDIT_LOG_ORIGIN"] + "+")
    assert run({**production_env, "AUDIT_SIGNING_KEY_FILE": str(key)}, "-c", START).returncode == 0


def test_manage_py_does_not_default_to_development_settings_on_a_database_server(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    server = run({**env, "DATABASE_URL": "postgres://registry@127.0.0.1:5432/registry"}, "manage.py", "check")
    assert server.returncode == 1
    assert "DATABASE_URL names a database server but DJANGO_SETTINGS_MODULE is not set" in server.stderr
    # A laptop's SQLite file keeps the development default (make run).
    laptop = run({**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.db'}"}, "manage.py", "check")
    assert laptop.returncode == 0, laptop.stderr


# HTTPS: redirect and HSTS by default, health checks over plain HTTP, and the documented opt-out ----------

PROBE = """
import django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="registry.example.com")
for path, headers in [("/healthz", {}), ("/readyz", {}), ("/accounts/login/", {}),
                      ("/accounts/login/", {"HTTP_X_FORWARDED_PROTO": "https"})]:
    response = client.get(path, **headers)
    print(path, response.status_code, response.get("Location"), response.get("Strict-Transport-Security"))
"""


@pytest.fixture
def probe_env(production_env, tmp_path):
    """The production environment on a scratch SQLite file and without a broker, for /readyz to answer (the
    file has no tables: the outbox check, which reads one, is left out)."""
    env = {
        **production_env,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'probe.db'}",
        "DJANGO_OUTBOX_LAG_READY_SECONDS": "0",
    }
    env.pop("CELERY_BROKER_URL")
    return env


def test_plain_http_is_redirected_except_the_health_checks(probe_env):
    done = run(probe_env, "-c", PROBE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "/healthz 200 None None",
        "/readyz 200 None None",
        "/accounts/login/ 301 https://registry.example.com/accounts/login/ None",
        "/accounts/login/ 200 None max-age=31536000; includeSubDomains; preload",
    ]


def test_the_redirect_can_be_turned_off_for_plain_http(probe_env):
    done = run({**probe_env, "DJANGO_SECURE_SSL_REDIRECT": "false"}, "-c", PROBE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2] == "/accounts/login/ 200 None None"


def test_the_test_settings_speak_plain_http(client):
    assert client.get("/accounts/login/").status_code == 200


# Content Security Policy ----------------------------------------------------------------------------

POLICY = [
    "default-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",
    "form-action 'self'",
    "img-src 'self' data:",
]


def directives(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    parts = [part.strip() for part in header.split(";")]
    return {part.split(" ", 1)[0]: part for part in parts}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/api/v1/models", "/api/schema/", "/healthz", "/nowhere"]
)
def test_pages_and_api_answers_carry_the_policy(client, path):
    policy = directives(client.get(path))
    for directive in POLICY:
        assert policy[directive.split(" ", 1)[0]] == directive
    assert policy["script-src"] == "script-src 'self'"  # no inline script at all without a nonce
    assert policy["style-src"] == "style-src 'self'"


@pytest.mark.django_db
def test_api_docs_inline_script_and_style_carry_the_nonce(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    policy = directives(response)
    [nonce] = re.findall(r"'nonce-([^']+)'", policy["script-src"])
    assert policy["script-src"] == f"script-src 'self' 'nonce-{nonce}'"
    assert policy["style-src"] == f"style-src 'self' 'nonce-{nonce}'"
    html = response.content.decode()
    inline_scripts = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
    assert inline_scripts == [f' nonce="{nonce}"']
    assert re.findall(r"<style([^>]*)>", html) == [f' nonce="{nonce}"']
    assert "SwaggerUIBundle({" in html


TEMPLATES = ROOT / "templates"
INLINE = re.compile(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=|javascript:", re.I)


def test_no_template_has_inline_script_or_style_without_a_nonce():
    """A strict policy blocks inline scripts, handlers and style attributes: pages must not rely on them."""
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if INLINE.search(line) and "csp_nonce" not in line:
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


# Files readable by their owner only -------------------------------------------------------------------


@pytest.fixture
def open_umask():
    previous = os.umask(0)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def sqlite_connection(path: Path):
    return ConnectionHandler({"default": _database(f"sqlite:///{path}")})["default"]


def test_the_sqlite_file_and_its_wal_are_created_owner_only(tmp_path, open_umask, django_db_blocker):
    path = tmp_path / "registry.db"
    connection = sqlite_connection(path)
    with django_db_blocker.unblock():
        try:
            with connection.cursor() as cursor:
                cursor.execute("CREATE TABLE session (key TEXT)")
                cursor.execute("INSERT INTO session VALUES ('live')")
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
            assert {file.name: mode(file) for file in files} == {file.name: 0o600 for file in files}
        finally:
            connection.close()


def test_an_existing_world_readable_sqlite_file_is_narrowed(tmp_path, open_umask, django_db_blocker):
    path = tmp_path / "registry.db"
    path.touch(mode=0o644)
    connection = sqlite_connection(path)
    with django_db_blocker.unblock():
        try:
            connection.ensure_connection()
        finally:
            connection.close()
    assert mode(path) == 0o600


def test_the_signing_key_is_created_owner_only(tmp_path, open_umask, settings):
    made = tmp_path / "keys" / "made.pem"
    signing.generate_key_file(made)
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "keys" / "autocreated.pem")
    settings.AUDIT_SIGNING_KEY_AUTOCREATE = True
    signing.signing_key()
    assert mode(made) == mode(tmp_path / "keys" / "autocreated.pem") == 0o600
    assert mode(tmp_path / "keys") == 0o700


# Checkpoints are signed by the log's own key only --------------------------------------------------------


@pytest.fixture
def grow_log(admin):
    from core.source import Source
    from registry import services

    def grow():
        services.asset_update(actor=admin, source=Source.cli(), asset=AssetFactory(), description="changed")

    return grow


@pytest.mark.django_db
def test_another_key_cannot_sign_the_log(settings, tmp_path, grow_log):
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "production.pem")
    settings.AUDIT_SIGNING_KEY_AUTOCREATE = True
    grow_log()
    assert checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN) is not None
    production_key = signing.verifier_key()
    grow_log()
    # A command run with the development settings: their key is created on first use, another key.
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "development.pem")
    before = (Checkpoint.objects.count(), MerkleNode.objects.count())
    with pytest.raises(WrongSigningKey, match="not signed by the key in AUDIT_SIGNING_KEY_FILE"):
        checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN)
    with pytest.raises(CommandError, match="refusing to sign: the checkpoints of this log are not signed"):
        call_command("audit_checkpoint")
    assert (Checkpoint.objects.count(), MerkleNode.objects.count()) == before
    # The log still verifies with its own key, and that key signs on.
    call_command("audit_verify", key=production_key, stdout=open(os.devnull, "w"))  # noqa: SIM115
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "production.pem")
    assert checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN).tree_size == AuditEvent.objects.count()


@pytest.mark.django_db
def test_another_origin_cannot_sign_the_log(settings, grow_log):
    grow_log()
    checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN)
    grow_log()
    with pytest.raises(WrongSigningKey):
        checkpoint_make(origin="another.example.com/audit/v1")
    assert Checkpoint.objects.count() == 1


# The pip-audit step of .ci/run --------------------------------------------------------------------------

AUDIT_STEP = ROOT / ".ci" / "audit_dependencies.py"
SKIPPED = "Dependency not found on PyPI and could not be audited: {0} (1.0)"


def audit_step(tmp_path, *, stdout: str, stderr: str = "", code: int = 0) -> subprocess.CompletedProcess:
    """Run the step with a pip-audit that answers as given."""
    fake = tmp_path / "pip-audit"
    fake.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stdout.write({stdout!r})\nsys.stderr.write({stderr!r})\n"
        f"sys.exit({code})\n"
    )
    fake.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "PIP_AUDIT": str(fake)}
    return run(env, str(AUDIT_STEP), "requirements.txt")


def audit_json(*dependencies: dict) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def test_the_audit_step_fails_on_a_vulnerability(tmp_path):
    vuln = {"id": "PYSEC-2099-1", "fix_versions": ["5.2.20"], "aliases": [], "description": "…"}
    stdout = audit_json(
        {"name": "django", "version": "5.2.19", "vulns": [vuln]},
        {"name": "six", "version": "1.17.0", "vulns": []},
    )
    done = audit_step(tmp_path, stdout=stdout, code=1)
    assert done.returncode == 1
    assert "VULNERABLE: django 5.2.19: PYSEC-2099-1 (fixed in: 5.2.20)" in done.stdout


def test_the_audit_step_passes_and_says_what_was_checked(tmp_path):
    stdout = audit_json({"name": "django", "version": "5.2.19", "vulns": []})
    done = audit_step(tmp_path, stdout=stdout)
    assert (done.returncode, done.stdout) == (
        0,
        "pip-audit: no known vulnerabilities in the 1 packages checked\n",
    )


def test_the_audit_step_says_plainly_what_it_could_not_audit(tmp_path):
    stdout = audit_json(
        {"name": "django", "skip_reason": SKIPPED.format("django")},
        {"name": "six", "skip_reason": SKIPPED.format("six")},
    )
    done = audit_step(tmp_path, stdout=stdout)
    assert done.returncode == 0
    assert "NOT AUDITED: 2 of 2 packages (Dependency not found on PyPI" in done.stdout
    assert "no package could be audited" in done.stdout


def test_the_audit_step_says_when_the_service_is_unreachable(tmp_path):
    error = "requests.exceptions.ConnectionError: Failed to resolve 'api.osv.dev'\n"
    done = audit_step(tmp_path, stdout="", stderr="Traceback …\n" + error, code=1)
    assert done.returncode == 0
    assert "pip-audit did not complete (exit 1): requests.exceptions.ConnectionError" in done.stdout
    assert "NOT AUDITED" in done.stdout
