#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build`.
import('../dist/cli/main.js').catch((err) => {
  console.error(`etcd-backup: cannot start (${err && err.message ? err.message : err}); run "npm run build" first`);
  process.exit(1);
});
