/**
 * Entry of the worker thread that runs ONE EtcdBackup's supervisor (runner model `thread`, started
 * by runner-models.ts). The thread has its own V8 heap, capped by `resourceLimits` (budget + base):
 * a runaway heap ends this thread with ERR_WORKER_OUT_OF_MEMORY, not the operator. An uncaught
 * error ends only this thread too; the host restarts it with backoff.
 */
import { parentPort, threadId } from 'node:worker_threads';
import type { ResolvedSecrets } from '../engine/supervisor-types.js';
import type { ChildMessage, ParentMessage } from './worker-protocol.js';
import { createWorkerRuntime } from './worker-runtime.js';

if (!parentPort) {
  console.error('thread-entry: must be started by the operator as a worker thread');
  process.exit(2);
}
const port = parentPort;

/** postMessage clones Buffers as plain Uint8Arrays; the etcd and crypto code wants Buffers. */
function asBuffers(secrets: ResolvedSecrets): ResolvedSecrets {
  const buffer = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const tls = secrets.etcdTls;
  return {
    ...secrets,
    ...(tls ? { etcdTls: { ca: buffer(tls.ca), cert: buffer(tls.cert), key: buffer(tls.key) } } : {}),
    ...(secrets.encryptionKey ? { encryptionKey: buffer(secrets.encryptionKey) } : {}),
  };
}

const runtime = createWorkerRuntime({
  send: (message: ChildMessage) => {
    port.postMessage(message);
    return Promise.resolve();
  },
  exit: (code) => process.exit(code), // in a worker thread: ends this thread only
  logLabels: { threadId },
});

port.on('message', (message: ParentMessage) =>
  runtime.receive(message.type === 'start' ? { ...message, config: { ...message.config, secrets: asBuffers(message.config.secrets) } } : message),
);
// The operator closed our port (it is stopping): nobody will read reports or stop us later.
port.on('close', () => void runtime.shutdown(0));
process.on('uncaughtException', runtime.fatal);
process.on('unhandledRejection', runtime.fatal);
