import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '@bufbuild/cel';
import { parse } from 'yaml';
import type { EtcdBackup } from '../../src/api/v1alpha1/etcd-backup-types.js';
import { REPO_ROOT } from '../harness/test-tools.js';

/**
 * How GitOps tools read an EtcdBackup's health, so tests can run them over the statuses the operator
 * writes: kstatus (cli-utils' Compute, what Flux's default health checks and kstatus-based pipelines use),
 * Flux's healthCheckExprs from config/flux/kustomization.yaml (CEL), and Argo CD's config/argocd/health.lua
 * (run by the real lua5.1; Argo CD runs Lua 5.1 too).
 */
export type KStatus = 'InProgress' | 'Failed' | 'Current' | 'Terminating';

type Obj = Pick<EtcdBackup, 'metadata' | 'status'> & { spec?: Partial<EtcdBackup['spec']> };

/**
 * cli-utils pkg/kstatus/status Compute for a custom resource, in its order: deletionTimestamp ->
 * Terminating; status.observedGeneration present and != generation -> InProgress; Reconciling=True ->
 * InProgress; Stalled=True -> Failed; Ready=True -> Current; Ready False/Unknown -> InProgress (never
 * Failed); no Ready condition -> Current.
 */
export function kstatusOf(obj: Obj): KStatus {
  if (obj.metadata.deletionTimestamp) return 'Terminating';
  const observed = obj.status?.observedGeneration;
  if (observed !== undefined && observed !== obj.metadata.generation) return 'InProgress';
  const conditions = obj.status?.conditions ?? [];
  const isTrue = (type: string) => conditions.some((c) => c.type === type && c.status === 'True');
  if (isTrue('Reconciling')) return 'InProgress';
  if (isTrue('Stalled')) return 'Failed';
  const ready = conditions.find((c) => c.type === 'Ready');
  if (!ready) return 'Current';
  return ready.status === 'True' ? 'Current' : 'InProgress';
}

export interface FluxHealthCheck {
  apiVersion: string;
  kind: string;
  inProgress: string;
  failed: string;
  current: string;
}

export const FLUX_KUSTOMIZATION = join(REPO_ROOT, 'config/flux/kustomization.yaml');

export function fluxHealthCheck(file = FLUX_KUSTOMIZATION): FluxHealthCheck {
  const doc = parse(readFileSync(file, 'utf8')) as { spec: { healthCheckExprs: FluxHealthCheck[] } };
  const check = doc.spec.healthCheckExprs.find((c) => c.kind === 'EtcdBackup');
  if (!check) throw new Error(`${file} has no healthCheckExprs for EtcdBackup`);
  return check;
}

/**
 * Flux's reading of healthCheckExprs (fluxcd/pkg runtime/cel StatusEvaluator): the object's top-level
 * fields are the CEL variables; inProgress, then failed, then current decide; none true, or an
 * expression that cannot be evaluated (a field not there yet), means still in progress.
 */
export function fluxStatusOf(obj: Obj, check: FluxHealthCheck = fluxHealthCheck()): Exclude<KStatus, 'Terminating'> {
  const vars = JSON.parse(JSON.stringify(obj)) as Record<string, never>;
  const holds = (expr: string): boolean => run(expr, vars) === true;
  try {
    if (holds(check.inProgress)) return 'InProgress';
    if (holds(check.failed)) return 'Failed';
    if (holds(check.current)) return 'Current';
  } catch {
    return 'InProgress';
  }
  return 'InProgress';
}

export const ARGOCD_HEALTH_LUA = join(REPO_ROOT, 'config/argocd/health.lua');
export type ArgoHealth = 'Healthy' | 'Progressing' | 'Degraded' | 'Suspended' | 'Missing' | 'Unknown';

export function lua51Installed(): boolean {
  return spawnSync('lua5.1', ['-v']).status === 0;
}

/** The `skip` option of a test that needs lua5.1: false when installed, else the line naming the package. */
export function skipUnlessLua(): false | string {
  return lua51Installed() ? false : 'lua5.1 is not installed: apt-get install lua5.1 (scripts/install-deps.sh)';
}

/** A JSON value as a Lua 5.1 table constructor (null fields are left out, as Argo CD's conversion does). */
export function luaLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'nil';
  if (typeof value === 'boolean' || typeof value === 'number') return String(value);
  if (typeof value === 'string') {
    // Lua 5.1 knows only decimal byte escapes: escape every byte outside printable ASCII, always with
    // three digits (`\\10` before a digit would read as a larger number).
    let out = '"';
    for (const byte of Buffer.from(value, 'utf8')) {
      const plain = byte >= 0x20 && byte < 0x7f && byte !== 0x22 && byte !== 0x5c;
      out += plain ? String.fromCharCode(byte) : `\\${String(byte).padStart(3, '0')}`;
    }
    return `${out}"`;
  }
  if (Array.isArray(value)) return `{${value.map(luaLiteral).join(', ')}}`;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== null && v !== undefined);
  return `{${entries.map(([k, v]) => `[${luaLiteral(k)}] = ${luaLiteral(v)}`).join(', ')}}`;
}

/** Runs health.lua over each object in one lua5.1 process, as Argo CD does: `obj` global, `hs` returned. */
export async function argoHealthOf(objects: Obj[], script = ARGOCD_HEALTH_LUA): Promise<Array<{ status: ArgoHealth; message: string }>> {
  const program = objects
    .map(
      (obj) =>
        `obj = ${luaLiteral(JSON.parse(JSON.stringify(obj)))}\n` +
        `do local hs = dofile(${luaLiteral(script)}); io.write(hs.status, "\\t", (string.gsub(hs.message or "", "\\n", " ")), "\\n") end\n`,
    )
    .join('');
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn('lua5.1', ['-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`lua5.1 failed (${code}): ${err.trim()}`))));
    child.stdin.end(program);
  });
  return output
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [status, ...message] = line.split('\t');
      return { status: status as ArgoHealth, message: message.join('\t') };
    });
}

/**
 * What the three must agree on for one object: Stalled is a failure everywhere, Ready=True healthy
 * everywhere (Argo CD also shows a failed verification as Degraded), and a suspended backup is
 * Suspended in Argo CD and current for Flux, while kstatus, which knows nothing of suspend, waits.
 */
export function disagreement(obj: Obj, k: KStatus, flux: KStatus, argo: ArgoHealth): string | undefined {
  const suspended = obj.spec?.suspend === true && obj.status?.observedGeneration === obj.metadata.generation;
  const expected: Record<Exclude<KStatus, 'Terminating'>, { flux: KStatus[]; argo: ArgoHealth[] }> = {
    Failed: { flux: ['Failed'], argo: suspended ? ['Suspended'] : ['Degraded'] },
    Current: { flux: ['Current'], argo: ['Healthy', 'Degraded'] },
    InProgress: {
      flux: suspended ? ['Current'] : ['InProgress'],
      argo: suspended ? ['Suspended'] : ['Progressing', 'Degraded'],
    },
  };
  // kstatus reads an object without status as Current (its blind spot); the other two wait.
  if (k === 'Terminating' || obj.status === undefined) return undefined;
  const want = expected[k];
  if (!want.flux.includes(flux)) return `kstatus ${k} but Flux ${flux}`;
  if (!want.argo.includes(argo)) return `kstatus ${k} but Argo CD ${argo}`;
  return undefined;
}
