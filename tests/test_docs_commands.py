"""The commands the docs ask a reader to run work as written from a checkout set up by `make run`: Django's
management commands through the project's virtual environment (.venv/bin/python), which `make` creates."""

import re
from pathlib import Path

DOCS = [Path("README.md"), *sorted(Path("docs").glob("*.md"))]
# A deployment installs into its own environment (docs/operations.md, "Each deployment"): bare python there.
DEPLOYMENT_DOCS = {Path("docs/operations.md")}


def test_manage_py_commands_name_the_venv_python():
    bare = [
        f"{path}:{number}: {line.strip()}"
        for path in DOCS
        if path not in DEPLOYMENT_DOCS
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"(?<![/\w])python3? manage\.py", line)
    ]
    assert bare == []


def test_the_ci_guide_runs_its_commands_through_the_venv():
    text = Path("docs/ci.md").read_text()
    assert ".venv/bin/python manage.py create_service_account fraud-ci" in text
