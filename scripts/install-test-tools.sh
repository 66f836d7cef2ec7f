#!/usr/bin/env bash
# Builds the real programs the upper test tiers run against, from the Go module proxy, pinned, into
# .tools/ (gitignored). Idempotent: a tool whose binary is already there for its version is not rebuilt.
#
#   .tools/etcd-v3.5.36/bin/{etcd,etcdctl,etcdutl}
#   .tools/etcd-v3.6.17/bin/{etcd,etcdctl,etcdutl}
#   .tools/kubernetes-v1.37.2/bin/kube-apiserver
#   .tools/minio-<version>/bin/minio
#
# `go install pkg@version` refuses modules whose go.mod has replace lines (etcd's and Kubernetes' do), so
# each tool is built from a throwaway wrapper module that requires the module and builds its main package.
# Usage: scripts/install-test-tools.sh [etcd-3.5|etcd-3.6|kube-apiserver|minio]...   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."

ETCD_35=v3.5.36
ETCD_36=v3.6.17
KUBERNETES=v1.37.2
MINIO=v0.0.0-20260212201848-7aac2a2c5b7c

TOOLS="$PWD/.tools"
mkdir -p "$TOOLS"
export GOFLAGS="${GOFLAGS:-} -trimpath"
export CGO_ENABLED=0

if ! command -v go >/dev/null 2>&1; then
  echo "error: Go is required to build the test tools (etcd 3.5/3.6, kube-apiserver, MinIO) and was not found on PATH." >&2
  exit 1
fi

# build_tool DIR 'PACKAGE@VERSION...' 'replace lines' PKG=OUT...
# (go get names the main packages, not just their modules, so go.sum covers everything they import.)
build_tool() {
  local dir=$1 module=$2 replaces=$3; shift 3
  local missing=0 spec
  for spec in "$@"; do [ -x "$dir/bin/${spec#*=}" ] || missing=1; done
  if [ $missing = 0 ]; then echo "==> $(basename "$dir"): cached"; return; fi
  local started=$SECONDS work
  work=$(mktemp -d)
  echo "==> building $(basename "$dir") (${module})"
  (
    cd "$work"
    printf 'module etcdbackup.io/testtools\n\ngo 1.26\n\n%s\n' "$replaces" > go.mod
    # A file that imports nothing keeps the wrapper a valid module; the packages are named on the command line.
    printf 'package testtools\n' > tools.go
    # shellcheck disable=SC2086
    go get $module 2>"$work.log" || { cat "$work.log" >&2; exit 1; }
    mkdir -p "$dir/bin" || exit 1
    for spec in "$@"; do
      # (set -e does not apply inside a subshell on the left of ||: every step checks itself.)
      go build -ldflags "-s -w ${LDFLAGS:-}" -o "$dir/bin/${spec#*=}.tmp" "${spec%%=*}" || exit 1
      mv "$dir/bin/${spec#*=}.tmp" "$dir/bin/${spec#*=}" || exit 1
    done
  ) || { rm -rf "$work" "$work.log"; return 1; }
  rm -rf "$work" "$work.log"
  echo "==> built $(basename "$dir") in $((SECONDS - started)) s"
}

build_etcd() {
  local version=$1
  local etcd_mods=""
  # server, etcdctl and etcdutl are three modules of one release: require all three at the same version.
  build_tool "$TOOLS/etcd-$version" "go.etcd.io/etcd/server/v3@$version go.etcd.io/etcd/etcdctl/v3@$version go.etcd.io/etcd/etcdutl/v3@$version" "$etcd_mods" \
    "go.etcd.io/etcd/server/v3=etcd" "go.etcd.io/etcd/etcdctl/v3=etcdctl" "go.etcd.io/etcd/etcdutl/v3=etcdutl"
}

build_kube_apiserver() {
  local minor=${KUBERNETES#v1.}
  local staging=v0.$minor
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging/...; a
  # dependent module must replace each with the published release of the same Kubernetes version.
  local replaces
  replaces=$(curl -fsS "$(go env GOPROXY | cut -d, -f1)/k8s.io/kubernetes/@v/$KUBERNETES.mod" \
    | awk '/=> \.\/staging\/src\// { print "replace " $1 " => " $1 " '"$staging"'" }')
  LDFLAGS="-X k8s.io/component-base/version.gitVersion=$KUBERNETES -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor%%.*}" \
    build_tool "$TOOLS/kubernetes-$KUBERNETES" "k8s.io/kubernetes/cmd/kube-apiserver@$KUBERNETES" "$replaces" \
    "k8s.io/kubernetes/cmd/kube-apiserver=kube-apiserver"
}

build_minio() {
  build_tool "$TOOLS/minio-$MINIO" "github.com/minio/minio@$MINIO" "" "github.com/minio/minio=minio"
}

wanted=("$@")
[ ${#wanted[@]} = 0 ] && wanted=(etcd-3.5 etcd-3.6 kube-apiserver minio)
for tool in "${wanted[@]}"; do
  case $tool in
    etcd-3.5) build_etcd "$ETCD_35" ;;
    etcd-3.6) build_etcd "$ETCD_36" ;;
    kube-apiserver) build_kube_apiserver ;;
    minio) build_minio ;;
    *) echo "error: unknown tool '$tool' (etcd-3.5, etcd-3.6, kube-apiserver, minio)" >&2; exit 2 ;;
  esac
done
du -sh "$TOOLS" | awk '{ print "==> .tools uses " $1 }'
