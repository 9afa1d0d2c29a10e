#!/usr/bin/env bash
# End-to-end demo on embedded defaults: dev issuer, seeded legacy database, Kafka-protocol
# broker, gateway, an agent session, then the audit trail it left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
HIS=.venv/bin/his
PY=.venv/bin/python
CONFIG=examples/gateway.yaml
BROKER_PORT=${HIS_DEMO_BROKER_PORT:-19092}
export HIS_AUDIT__KAFKA__BOOTSTRAP_SERVERS="[\"127.0.0.1:${BROKER_PORT}\"]"
mkdir -p .his
rm -f .his/gateway.db .his/audit-archive.db

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

$HIS dev init --config "$CONFIG"
if [ ! -f .his/legacy.db ]; then
  echo "== seeding the legacy EHR database (.his/legacy.db) from Synthea bundles"
  $HIS legacy seed --url sqlite:///.his/legacy.db
fi

echo "== starting the audit broker and the gateway"
$HIS dev broker --port "$BROKER_PORT" > .his/broker.log 2>&1 &
PIDS+=($!)
$HIS serve --config "$CONFIG" > .his/gateway.log 2>&1 &
PIDS+=($!)
$HIS health --target 127.0.0.1:50051 --wait 30 > /dev/null || {
  echo "gateway did not become ready; log follows"; cat .his/gateway.log; exit 1; }

echo "== agent session"
$PY examples/agent_session.py --config "$CONFIG" --target 127.0.0.1:50051

echo
echo "== the audit trail of that session (IHE BALP AuditEvents on Kafka topic his.audit.v1)"
sleep 1
$HIS audit --config "$CONFIG" archive --no-follow
$HIS audit --config "$CONFIG" export --since 1h --format csv | cut -d, -f1-8 | head -20
$HIS audit --config "$CONFIG" verify --store sqlite:///.his/audit-archive.db
