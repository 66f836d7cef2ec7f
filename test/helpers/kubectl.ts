import { spawn } from 'node:child_process';

/** Runs the real kubectl against `kubeconfig`; rejects with a KubectlError on a non-zero exit. */
export function runKubectl(kubeconfig: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', args, { env: { ...process.env, KUBECONFIG: kubeconfig }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new KubectlError(args, code, err.trim(), out))));
    child.stdin.end(input ?? '');
  });
}

/** A kubectl run that failed; `stderr` holds what the API server answered. */
export class KubectlError extends Error {
  constructor(
    readonly args: string[],
    readonly code: number | null,
    readonly stderr: string,
    readonly stdout: string,
  ) {
    super(`kubectl ${args.join(' ')} failed (${code}): ${stderr}`);
    this.name = 'KubectlError';
  }
}
