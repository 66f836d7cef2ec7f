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

# --- etcd tools: restore/verify run `etcdctl snapshot restore` and a temporary `etcd` ---
# Debian bookworm ships etcd 3.4, the version the tests run against.
FROM debian:bookworm-slim AS etcd-tools
RUN apt-get update \
 && apt-get install -y --no-install-recommends etcd-server etcd-client \
 && rm -rf /var/lib/apt/lists/*

# --- runtime ---
FROM node:22-bookworm-slim
ENV NODE_ENV=production
COPY --from=etcd-tools /usr/bin/etcd /usr/bin/etcdctl /usr/local/bin/
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
