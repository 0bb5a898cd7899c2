"""Audit requirements.txt with pip-audit; fail on a known vulnerability, say plainly what was not audited.

pip-audit prints "No known vulnerabilities found" and exits 0 even when its vulnerability service answered for
none of the packages (a mirror that lacks PyPI's per-version JSON answers "not found" for each), and exits 1
with a traceback when the service cannot be reached at all. Neither is a finding: this step then says that the
packages were NOT audited and passes. A vulnerability that was found fails the step.

    .venv/bin/python .ci/audit_dependencies.py requirements.txt     (PIP_AUDIT names the pip-audit to run)
"""

import json
import os
import subprocess
import sys


def main(requirements: str) -> int:
    command = [os.environ.get("PIP_AUDIT", ".venv/bin/pip-audit"), "-r", requirements]
    command += ["--format", "json", "--progress-spinner", "off"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    try:
        dependencies = json.loads(done.stdout)["dependencies"]
    except (ValueError, KeyError, TypeError):
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        print(f"pip-audit did not complete (exit {done.returncode}): {errors[-1] if errors else 'no output'}")
        print("NOT AUDITED: the vulnerability service could not be asked; no package was checked.")
        return 0
    vulnerable = [dep for dep in dependencies if dep.get("vulns")]
    skipped = [dep for dep in dependencies if "skip_reason" in dep]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "none yet"
            print(f"VULNERABLE: {dep['name']} {dep['version']}: {vuln['id']} (fixed in: {fixed})")
    if skipped:
        reasons = sorted({dep["skip_reason"].split(":")[0] for dep in skipped})
        print(
            f"NOT AUDITED: {len(skipped)} of {len(dependencies)} packages ({'; '.join(reasons)}): "
            + ", ".join(dep["name"] for dep in skipped)
        )
    checked = len(dependencies) - len(skipped)
    if vulnerable:
        print(f"pip-audit: {len(vulnerable)} vulnerable packages among {checked} checked")
        return 1
    if checked == 0:
        print("pip-audit: no package could be audited; this run had no vulnerability check.")
    else:
        print(f"pip-audit: no known vulnerabilities in the {checked} packages checked")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "requirements.txt"))
