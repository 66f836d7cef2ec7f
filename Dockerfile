# syntax=docker/dockerfile:1
# etcd-backup-operator: `docker build -t etcd-backup-operator .`
# Node 22 at runtime: newer AWS SDK releases need it; the code also runs on Node 20.

# --- build: compile TypeScript, then keep only production dependencies ---
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# --- etcd tools: restore/verify run `etcdutl snapshot restore` and a temporary `etcd` ---
# etcd 3.6, not Debian bookworm's 3.4: 3.6 restores backups of 3.4, 3.5 and 3.6 clusters
# (docs/compatibility.md). Built from the Go module proxy at the version the test matrix restores
# with (test/harness/test-tools.ts ETCD_VERSIONS['3.6']; test/unit/etcd-tools.test.ts keeps them equal). `go install pkg@version` refuses etcd's modules (their go.mod has replace
# lines), so a throwaway wrapper module requires them and builds the main packages, as
# scripts/install-test-tools.sh does.
FROM golang:1.26-bookworm AS etcd-tools
ARG ETCD_VERSION=v3.6.17
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
WORKDIR /src
RUN printf 'module etcdbackup.io/etcdtools\n\ngo 1.26\n' > go.mod \
 && printf 'package etcdtools\n' > tools.go \
 && go get go.etcd.io/etcd/server/v3@${ETCD_VERSION} go.etcd.io/etcd/etcdutl/v3@${ETCD_VERSION} \
 && go build -ldflags '-s -w' -o /out/etcd go.etcd.io/etcd/server/v3 \
 && go build -ldflags '-s -w' -o /out/etcdutl go.etcd.io/etcd/etcdutl/v3 \
 && /out/etcd --version && /out/etcdutl version

# --- runtime ---
FROM node:22-bookworm-slim
ENV NODE_ENV=production
COPY --from=etcd-tools /out/etcd /out/etcdutl /usr/local/bin/
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY crds ./crds
# Numeric, so that Kubernetes' runAsNonRoot can verify it; no home or writable root is needed
# (config/manager mounts /tmp and the backup directory).
USER 65532:65532
EXPOSE 8080
# A small young generation frees streaming Buffers early (see bin/etcd-backup.js).
ENTRYPOINT ["node", "--max-semi-space-size=1", "dist/cli/main.js"]
CMD ["operator"]
