#!/usr/bin/env bash
# Quick start: installs what is needed, starts a local etcd with sample data, backs it up into
# ./backups with `etcd-backup run` (full snapshot + deltas) for a few seconds, then shows the
# backups, verifies them against the live etcd and prints how to restore.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

./scripts/install-deps.sh

work="$root/.quickstart"
rm -rf "$work"
mkdir -p "$work" "$root/backups"
port=${QUICKSTART_ETCD_PORT:-12379}
endpoint="http://127.0.0.1:$port"

echo "==> starting a local etcd on $endpoint (data in $work/etcd, log in $work/etcd.log)"
etcd --name quickstart --data-dir "$work/etcd" \
  --listen-client-urls "$endpoint" --advertise-client-urls "$endpoint" \
  --listen-peer-urls "http://127.0.0.1:$((port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
  --initial-cluster "quickstart=http://127.0.0.1:$((port + 1))" >"$work/etcd.log" 2>&1 &
etcd_pid=$!
run_pid=
trap 'kill ${run_pid:-} $etcd_pid 2>/dev/null || true; wait $etcd_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  if ETCDCTL_API=3 etcdctl --endpoints "$endpoint" endpoint health >/dev/null 2>&1; then break; fi
  sleep 0.2
done

echo "==> writing sample data"
for i in $(seq 1 100); do ETCDCTL_API=3 etcdctl --endpoints "$endpoint" put "/sample/key-$i" "value-$i" >/dev/null; done

cat >"$work/backup.yaml" <<YAML
apiVersion: etcdbackup.io/v1alpha1
kind: EtcdBackup
metadata:
  name: quickstart
spec:
  etcd:
    endpoints: ["$endpoint"]
  store:
    local:
      path: $root/backups
  fullSnapshot:
    schedule: "0 * * * *"
  deltaSnapshot:
    period: 2s
  memory:
    budget: 64Mi
YAML

echo "==> running: npx etcd-backup run -f $work/backup.yaml  (10 seconds, then SIGTERM)"
# The launcher itself (not npx, which does not pass SIGTERM on), so that the signal reaches it.
./bin/etcd-backup.js --log-format text run -f "$work/backup.yaml" &
run_pid=$!
sleep 4
for i in $(seq 1 20); do ETCDCTL_API=3 etcdctl --endpoints "$endpoint" put "/sample/later-$i" "written-while-running-$i" >/dev/null; done
sleep 6
kill -TERM $run_pid
wait $run_pid || true

echo
echo "==> backups in $root/backups:"
npx etcd-backup list --store "file://$root/backups"
echo
echo "==> verifying the latest backup against the live etcd:"
npx etcd-backup --log-format text verify --store "file://$root/backups" --endpoints "$endpoint"
echo
echo "Backups are in $root/backups (full/ = snapshots, delta/ = revision ranges)."
echo "Restore them into a new etcd data dir with:"
echo "  npx etcd-backup restore --store file://$root/backups --data-dir /tmp/etcd-restored"
echo "  etcd --data-dir /tmp/etcd-restored"
