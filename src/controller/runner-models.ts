/**
 * How an EtcdBackup's supervisor runs inside the operator (the runner model), behind one handle the
 * SupervisorHost drives with the worker protocol:
 * - `process`: a forked Node process per EtcdBackup (worker-entry.ts). Isolates everything (a crash,
 *   a runaway heap, a CPU-heavy gzip), costs a whole Node process (~75 MiB RSS idle).
 * - `thread`: a worker_threads Worker per EtcdBackup (thread-entry.ts), its V8 heap capped by
 *   `resourceLimits`. Isolates exceptions and the heap; shares the process's CPU and native memory.
 * - `inline`: the supervisor runs in the operator's own event loop. An uncaught exception or
 *   rejection in its work is attributed to it (AsyncLocalStorage) and restarts only it; its memory
 *   is held to its MemoryBudget but nothing caps the heap per EtcdBackup, and a hung or CPU-heavy
 *   supervisor delays the others.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { errorMessage } from '../errors.js';
import type { ChildMessage, ParentMessage, RunnerModel } from './worker-protocol.js';
import { createWorkerRuntime, type WorkerRuntime } from './worker-runtime.js';

export { RUNNER_MODELS, type RunnerModel } from './worker-protocol.js';

export interface WorkerModule {
  modulePath: string;
  execArgv: string[];
}

/** What to call a worker of each model in messages. */
export const WORKER_NOUN: Record<RunnerModel, string> = { process: 'worker process', thread: 'worker thread', inline: 'in-process worker' };

/** One running worker, whatever the model. */
export interface WorkerHandle {
  /** For log lines: `{ pid }`, `{ threadId }` or nothing (in-process). */
  readonly labels: Record<string, number | undefined>;
  /** False once messages can no longer reach the worker. */
  connected(): boolean;
  send(message: ParentMessage): void;
  /** Ends the worker at once (SIGKILL, Worker.terminate); in-process it can only be abandoned. */
  kill(): void;
  /** Resolves when the worker has exited. */
  readonly exited: Promise<void>;
}

export interface WorkerCallbacks {
  onMessage(message: ChildMessage): void;
  /** The worker ended; `how` says how, to follow "worker": "exited with code 1", "was killed (SIGKILL; ...)". */
  onExit(how: string): void;
  onError(message: string): void;
}

export interface LaunchOptions {
  /** V8 old-space cap in MiB (process and thread); in-process nothing can cap it. */
  heapMb: number;
  process: WorkerModule;
  thread: WorkerModule;
}

/**
 * A 1 MiB young generation makes V8 free the short-lived Buffers of streaming (snapshot messages,
 * watch responses) soon after use; the default lets ~35 MiB of them pile up (bench/full-snapshot.ts).
 */
const WORKER_NODE_FLAGS = ['--max-semi-space-size=1'];

/**
 * The compiled worker entries sit next to this file; under tsx (tests, `npm run` from source) this
 * file is a .ts and the workers must be loaded through tsx too.
 */
export function defaultWorkerModules(): { process: WorkerModule; thread: WorkerModule } {
  const source = fileURLToPath(import.meta.url).endsWith('.ts');
  const path = (name: string) => fileURLToPath(new URL(`./${name}.${source ? 'ts' : 'js'}`, import.meta.url));
  const tsx = source ? ['--import', 'tsx'] : [];
  return {
    process: { modulePath: path('worker-entry'), execArgv: [...tsx, ...WORKER_NODE_FLAGS] },
    // A worker thread takes no V8 flags of its own (its heap is set by resourceLimits); under tsx
    // launchThread registers the loader itself.
    thread: { modulePath: path('thread-entry'), execArgv: [] },
  };
}

export function launchWorker(model: RunnerModel, options: LaunchOptions, callbacks: WorkerCallbacks): WorkerHandle {
  switch (model) {
    case 'process':
      return launchProcess(options, callbacks);
    case 'thread':
      return launchThread(options, callbacks);
    case 'inline':
      return launchInline(callbacks);
  }
}

function launchProcess(options: LaunchOptions, callbacks: WorkerCallbacks): WorkerHandle {
  const child: ChildProcess = fork(options.process.modulePath, [], {
    execArgv: [...options.process.execArgv, `--max-old-space-size=${options.heapMb}`],
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  const exited = new Promise<void>((resolve) => {
    if (!running()) resolve();
    child.once('exit', () => resolve());
  });
  child.on('message', (message: ChildMessage) => callbacks.onMessage(message));
  child.on('error', (err) => callbacks.onError(err.message));
  child.on('exit', (code, signal) =>
    callbacks.onExit(
      signal === 'SIGKILL'
        ? 'was killed (SIGKILL; out of memory?)'
        : signal
          ? `was killed by ${signal}`
          : `exited with code ${code}`,
    ),
  );
  return {
    labels: { pid: child.pid },
    connected: () => child.connected,
    send: (message) => {
      if (child.connected) child.send(message, () => undefined);
      else if (message.type === 'stop' && running()) child.kill('SIGTERM');
    },
    kill: () => child.kill('SIGKILL'),
    exited,
  };
}

function launchThread(options: LaunchOptions, callbacks: WorkerCallbacks): WorkerHandle {
  const { modulePath, execArgv } = options.thread;
  // Under tsx a worker thread does not inherit its loader (`--import tsx` in execArgv is not applied
  // to threads): register it in the thread first, then load the entry.
  const entry = modulePath.endsWith('.ts')
    ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then(({ register }) => { register(); return import(${JSON.stringify(pathToFileURL(modulePath).href)}); })`
    : modulePath;
  const worker = new Worker(entry, {
    eval: modulePath.endsWith('.ts'),
    execArgv,
    // The hard heap cap: a runaway heap ends this thread (ERR_WORKER_OUT_OF_MEMORY), not the operator.
    // A 1 MiB semi-space (3 MiB young generation), as the forked workers get (WORKER_NODE_FLAGS).
    resourceLimits: { maxOldGenerationSizeMb: options.heapMb, maxYoungGenerationSizeMb: 3 },
    stdout: false,
    stderr: false,
  });
  let alive = true;
  let error: string | undefined;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.on('message', (message: ChildMessage) => callbacks.onMessage(message));
  worker.on('error', (err) => {
    // An error the thread did not handle itself, e.g. ERR_WORKER_OUT_OF_MEMORY; 'exit' follows.
    error = err.message;
    callbacks.onError(err.message);
  });
  worker.on('exit', (code) => {
    alive = false;
    callbacks.onExit(error ? `failed: ${error} (exit code ${code})` : `exited with code ${code}`);
  });
  return {
    labels: { threadId: worker.threadId },
    connected: () => alive,
    send: (message) => {
      if (alive) worker.postMessage(message);
    },
    kill: () => void worker.terminate(),
    exited,
  };
}

// ---------------------------------------------------------------------------------------------
// In-process: errors that escape a supervisor's work are routed to it by async context.

const inlineContext = new AsyncLocalStorage<WorkerRuntime>();
let routingInstalled = false;

/**
 * Installs (once) the process handlers that give an uncaught exception or unhandled rejection to the
 * in-process worker whose work raised it. One that belongs to no worker is the operator's own: it
 * ends the process as Node would.
 */
function installErrorRouting(): void {
  if (routingInstalled) return;
  routingInstalled = true;
  const route = (event: 'uncaughtException' | 'unhandledRejection') => (err: unknown) => {
    const runtime = inlineContext.getStore();
    if (runtime) return runtime.fatal(err);
    // Not a worker's: whoever else listens (a test runner, an embedding program) decides; alone, we
    // end the process as Node would have without our listener.
    if (process.listenerCount(event) > 1) return;
    console.error(err instanceof Error ? (err.stack ?? err.message) : errorMessage(err));
    process.exit(1);
  };
  process.on('uncaughtException', route('uncaughtException'));
  process.on('unhandledRejection', route('unhandledRejection'));
}

function launchInline(callbacks: WorkerCallbacks): WorkerHandle {
  installErrorRouting();
  let alive = true;
  let resolveExited = () => undefined as void;
  const exited = new Promise<void>((resolve) => (resolveExited = resolve));
  // Messages go out on a later tick, as over a channel: the host never re-enters itself.
  const runtime: WorkerRuntime = createWorkerRuntime({
    send: (message) =>
      new Promise((resolve) =>
        setImmediate(() => {
          if (alive) callbacks.onMessage(message);
          resolve();
        }),
      ),
    exit: (code) => {
      if (!alive) return;
      alive = false;
      resolveExited();
      callbacks.onExit(`ended with code ${code}`);
    },
    logLabels: {},
  });
  return {
    labels: {},
    connected: () => alive,
    // Everything the runtime starts runs in its async context, so errors can be traced back to it.
    send: (message) => setImmediate(() => inlineContext.run(runtime, () => runtime.receive(message))),
    kill: () => {
      // Nothing can stop a stuck supervisor inside our own process: forget it and go on.
      if (!alive) return;
      alive = false;
      resolveExited();
      callbacks.onExit('was abandoned (it did not stop in time)');
    },
    exited,
  };
}
