#!/usr/bin/env -S node --max-semi-space-size=1
// --max-semi-space-size=1: streaming Buffers are freed soon after use instead of piling up (~35 MiB).
// Thin launcher: the CLI is compiled to dist/ by `npm run build`.
import('../dist/cli/main.js').catch((err) => {
  console.error(`etcd-backup: cannot start (${err && err.message ? err.message : err}); run "npm run build" first`);
  process.exit(1);
});
