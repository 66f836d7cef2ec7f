#!/usr/bin/env node
import { main } from './program.js';

// The AWS SDK prints a multi-line NodeVersionSupportWarning on Node < 22 when its client loads,
// which breaks one-line errors and JSON logs; the lockfile pins SDK versions that support Node 20
// (and the image runs Node 22). Set the variable to "false" to see the warning.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const exitCode = await main(process.argv);
process.exitCode = exitCode;
// gRPC channels and sockets may linger after the work is done; do not let them hold the exit.
setTimeout(() => process.exit(exitCode), 100).unref();
