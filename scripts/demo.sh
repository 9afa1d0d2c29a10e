#!/usr/bin/env bash
# End-to-end demo on embedded defaults: dev issuer, seeded legacy database, gateway, agent.
set -euo pipefail
cd "$(dirname "$0")/.."
HIS=.venv/bin/his
PY=.venv/bin/python
CONFIG=examples/gateway.yaml
mkdir -p .his

$HIS dev init --config "$CONFIG"
if [ ! -f .his/legacy.db ]; then
  echo "== seeding the legacy EHR database (.his/legacy.db) from Synthea bundles"
  $HIS legacy seed --url sqlite:///.his/legacy.db
fi

echo "== starting the gateway"
$HIS serve --config "$CONFIG" > .his/gateway.log 2>&1 &
GATEWAY_PID=$!
trap 'kill $GATEWAY_PID 2>/dev/null || true; wait $GATEWAY_PID 2>/dev/null || true' EXIT
$HIS health --target 127.0.0.1:50051 --wait 30 || {
  echo "gateway did not become ready; log follows"; cat .his/gateway.log; exit 1; }

echo "== agent session"
$PY examples/agent_session.py --config "$CONFIG" --target 127.0.0.1:50051
