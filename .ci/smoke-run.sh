#!/usr/bin/env bash
# Start `make run` on a scratch SQLite database and check that /api/v1/models answers with the demo data.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
port=${SMOKE_PORT:-8765}
log="$scratch/run.log"
DATABASE_URL="sqlite:///$scratch/demo.db" setsid make run PORT="$port" >"$log" 2>&1 &
pid=$!
trap 'kill -- -$pid 2>/dev/null || true; rm -rf "$scratch"' EXIT
for _ in $(seq 1 120); do
  token=$(sed -n 's/^  CI token for ci-bot: //p' "$log" | head -n 1)
  if [ -n "$token" ] && curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/models" \
      -o "$scratch/models.json" 2>/dev/null; then
    break
  fi
  sleep 1
done
if ! grep -q '"fraud-detector"' "$scratch/models.json" 2>/dev/null; then
  echo "make run did not serve the demo data; its log:"; cat "$log"; exit 1
fi
grep -q "Admin login: admin / admin-demo-password" "$log" || { echo "make run did not print the admin login"; cat "$log"; exit 1; }
echo "make run serves /api/v1/models with the demo data: ok"
