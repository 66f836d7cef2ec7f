#!/usr/bin/env bash
# Installs what etcd-backup needs on Debian/Ubuntu with Node 20: etcd + etcdctl (Debian etcd-server,
# etcd-client) when missing, lua5.1, promtool and strace for the tests, the npm dependencies (npm ci),
# and the compiled CLI (dist/).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
  echo "==> installing etcd-server and etcd-client (apt)"
  as_root apt-get update -qq
  # The Debian package may start a system etcd on 127.0.0.1:2379; nothing here relies on it.
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
echo "==> $(etcd --version | head -n 1)"

# Test-only: lua5.1 runs config/argocd/health.lua as Argo CD would; promtool (Debian package prometheus)
# checks and unit-tests config/prometheus/. Their tests skip with one line naming the package when missing.
missing=()
command -v lua5.1 >/dev/null 2>&1 || missing+=(lua5.1)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# strace lets local-store-hardening see the directory fsyncs (that test skips without it).
command -v strace >/dev/null 2>&1 || missing+=(strace)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing ${missing[*]} (apt)"
  as_root apt-get update -qq
  # --no-install-recommends: only promtool is wanted, not a running Prometheus server.
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package may start a Prometheus service; the tests only run promtool.
  as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "error: Node.js >= 20 is required (found $(node --version))" >&2
  exit 1
fi

echo "==> npm ci"
npm ci --no-audit --no-fund --loglevel=error
echo "==> building dist/"
npm run --silent build
