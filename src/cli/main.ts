#!/usr/bin/env node
import { main } from './program.js';

const exitCode = await main(process.argv);
process.exitCode = exitCode;
// gRPC channels and sockets may linger after the work is done; do not let them hold the exit.
setTimeout(() => process.exit(exitCode), 100).unref();
