// HTTP front end: routing, content negotiation (JSON, or meta.k8s.io Table), discovery, watch streams.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { ApiError, badRequest, expired, failure, methodNotAllowed, pathNotFound, statusBody, unsupportedMediaType } from './errors.js';
import { Handlers, type WriteOptions } from './handlers.js';
import { isObj, type Json, type Obj } from './json.js';
import { decodeProtobufObject } from './protobuf.js';
import { Registry } from './registry.js';
import { apiGroup, apiResourceList, apiVersionOf, openApiV3Doc, type ResourceDef } from './resources.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { type HistoryEvent, type KubeApiState, newState, Store } from './store.js';
import { buildTable, type IncludeObject } from './table.js';

export interface KubeApiServer {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** drops all open watches (simulates apiserver restart for watch clients) */
  closeWatches(): void;
  /** make subsequent watches with an older resourceVersion get 410 Gone: compacts the event history */
  compactHistory(): void;
}

export interface KubeApiServerOptions {
  /** 0 or absent: a free port. */
  port?: number;
  /** State of a previous server (see serverState) to simulate a restart that keeps etcd's data. */
  state?: KubeApiState;
  /** Watch history length before old events are compacted away (default 10 000). */
  historyLimit?: number;
  /** Sees every request (method, path with query, User-Agent) before it is served. */
  onRequest?: (request: { method: string; url: string; userAgent: string }) => void;
}

const MAX_BODY = 3 * 1024 * 1024; // the apiserver's request body limit
const states = new WeakMap<KubeApiServer, KubeApiState>();

/** The state a server holds; pass it as `state` to a new server to keep objects across a restart. */
export function serverState(server: KubeApiServer): KubeApiState {
  const s = states.get(server);
  if (!s) throw new Error('not a server started by startKubeApiServer');
  return s;
}

const debug = process.env.KUBE_API_SERVER_DEBUG ? (msg: string) => process.stderr.write(`[kube-api] ${msg}\n`) : () => {};

interface Negotiated {
  table?: string;
}

function negotiate(accept: string | undefined): Negotiated {
  for (const part of (accept ?? '').split(',')) {
    const params = new Map(part.split(';').slice(1).map((p) => p.trim().split('=') as [string, string]));
    if (params.get('as') === 'Table' && params.get('g') === 'meta.k8s.io') return { table: params.get('v') ?? 'v1' };
  }
  return {};
}

function send(res: ServerResponse, code: number, body: unknown, warnings: string[] = []): void {
  const text = JSON.stringify(body);
  const headers: Record<string, string | string[]> = {
    'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Content-Length': String(Buffer.byteLength(text)),
  };
  if (warnings.length) headers.Warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
  res.writeHead(code, headers);
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw failure(413, 'RequestEntityTooLarge', 'the request body is too large');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

const PROTOBUF = 'application/vnd.kubernetes.protobuf';

function decodeObject(body: Buffer, contentType: string | undefined): Json {
  const type = (contentType ?? 'application/json').split(';')[0]?.trim();
  if (type === PROTOBUF) {
    const obj = decodeProtobufObject(body);
    if (!obj) throw unsupportedMediaType(type, ['application/json', 'application/yaml']);
    return obj;
  }
  const raw = body.toString('utf8');
  if (raw.trim() === '') return null;
  if (type === 'application/json' || type === '*/*' || type === '') {
    try {
      return JSON.parse(raw) as Json;
    } catch (e) {
      throw badRequest(`couldn't get version/kind; json parse error: ${(e as Error).message}`);
    }
  }
  if (type === 'application/yaml') return parseYaml(raw) as Json;
  throw unsupportedMediaType(type ?? '', ['application/json', 'application/yaml']);
}

interface Route {
  def: ResourceDef;
  namespace?: string;
  name?: string;
  subresource?: string;
  watch: boolean;
}

export async function startKubeApiServer(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const state = opts.state ?? newState(opts.historyLimit);
  const store = new Store(state);
  const registry = new Registry(store);
  const handlers = new Handlers(store, registry);
  handlers.bootstrap();

  const sockets = new Set<Socket>();
  const watches = new Set<() => void>();
  let port = 0;

  const versionInfo = {
    major: '1', minor: '32', gitVersion: 'v1.32.0', gitCommit: '0000000000000000000000000000000000000000',
    gitTreeState: 'clean', buildDate: '2024-12-11T00:00:00Z', goVersion: 'go1.23.3', compiler: 'gc', platform: 'linux/amd64',
  };

  function openApiDocs(): Map<string, { doc: Obj; hash: string }> {
    const byGv = new Map<string, ResourceDef[]>();
    for (const d of registry.all()) {
      const key = d.group ? `apis/${d.group}/${d.version}` : `api/${d.version}`;
      byGv.set(key, [...(byGv.get(key) ?? []), d]);
    }
    const out = new Map<string, { doc: Obj; hash: string }>();
    for (const [k, defs] of byGv) {
      const doc = openApiV3Doc(defs);
      out.set(k, { doc, hash: createHash('sha512').update(JSON.stringify(doc)).digest('hex').toUpperCase() });
    }
    return out;
  }

  /** Non-resource paths: version, discovery, OpenAPI, health. Returns false when not one of them. */
  function serveMeta(path: string, res: ServerResponse): boolean {
    const segs = path.split('/').filter(Boolean);
    if (path === '/version') send(res, 200, versionInfo);
    else if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('ok');
    } else if (path === '/api') {
      send(res, 200, { kind: 'APIVersions', versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${port}` }] });
    } else if (path === '/api/v1') send(res, 200, apiResourceList('v1', registry.inGroupVersion('', 'v1')));
    else if (path === '/apis') {
      const groups = [...registry.groups()].map(([g, vs]) => apiGroup(g, vs));
      send(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups });
    } else if (segs[0] === 'apis' && segs.length === 2) {
      const vs = registry.groups().get(segs[1] ?? '');
      if (!vs) throw pathNotFound();
      send(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(segs[1] ?? '', vs) });
    } else if (segs[0] === 'apis' && segs.length === 3) {
      const defs = registry.inGroupVersion(segs[1] ?? '', segs[2] ?? '');
      if (defs.length === 0) throw pathNotFound();
      send(res, 200, apiResourceList(`${segs[1]}/${segs[2]}`, defs));
    } else if (path === '/openapi/v3') {
      const paths: Obj = {};
      for (const [k, { hash }] of openApiDocs()) paths[k] = { serverRelativeURL: `/openapi/v3/${k}?hash=${hash}` };
      send(res, 200, { paths });
    } else if (path.startsWith('/openapi/v3/')) {
      const doc = openApiDocs().get(path.slice('/openapi/v3/'.length));
      if (!doc) throw pathNotFound();
      send(res, 200, doc.doc);
    } else return false;
    // /openapi/v2 stays 404: kubectl asks for it in protobuf only and copes without it.
    return true;
  }

  function route(path: string): Route | undefined {
    let segs: string[];
    try {
      segs = path.split('/').filter(Boolean).map(decodeURIComponent);
    } catch {
      return undefined;
    }
    let group: string;
    let version: string;
    let rest: string[];
    if (segs[0] === 'api' && segs.length >= 3) [group, version, rest] = ['', segs[1] ?? '', segs.slice(2)];
    else if (segs[0] === 'apis' && segs.length >= 4) [group, version, rest] = [segs[1] ?? '', segs[2] ?? '', segs.slice(3)];
    else return undefined;
    let watch = false;
    if (rest[0] === 'watch') {
      watch = true;
      rest = rest.slice(1);
    }
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3 && registry.find(group, version, rest[2] ?? '')?.namespaced) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const def = registry.find(group, version, rest[0] ?? '');
    if (!def || rest.length > 3) return undefined;
    const [, name, subresource] = rest;
    if (name !== undefined && def.namespaced && namespace === undefined) return undefined;
    if (namespace !== undefined && !def.namespaced) return undefined;
    if (subresource !== undefined && !(subresource === 'status' && def.statusSubresource)) return undefined;
    return { def, namespace, name, subresource, watch };
  }

  function writeOptions(q: URLSearchParams): WriteOptions {
    return {
      dryRun: q.getAll('dryRun').includes('All'),
      fieldValidation: q.get('fieldValidation') ?? 'Warn',
      fieldManager: q.get('fieldManager') ?? undefined,
      warnings: [],
    };
  }

  function includeObject(q: URLSearchParams): IncludeObject {
    const v = q.get('includeObject');
    return v === 'None' || v === 'Object' ? v : 'Metadata';
  }

  function serveWatch(req: IncomingMessage, res: ServerResponse, r: Route, q: URLSearchParams, neg: Negotiated): void {
    const { def } = r;
    const labels = parseLabelSelector(q.get('labelSelector'));
    const fields = parseFieldSelector(r.name ? `metadata.name=${r.name}` : q.get('fieldSelector'));
    const rvParam = q.get('resourceVersion');
    const sendInitial = q.get('sendInitialEvents') === 'true';
    const fromRv = rvParam && rvParam !== '0' && !sendInitial ? Number(rvParam) : undefined;
    if (fromRv !== undefined && !Number.isInteger(fromRv)) throw badRequest(`resourceVersion: Invalid value: "${rvParam}": must be a valid resource version`);

    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const wrap = (o: Obj): Obj => neg.table
      ? buildTable(neg.table, def.columns, [o], { resourceVersion: String((o.metadata as Obj).resourceVersion ?? '') }, includeObject(q))
      : o;
    const write = (type: string, object: Obj): void => {
      res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const matches = (o: Obj): boolean => labels(o) && fields(o);
    const deliver = (ev: HistoryEvent): void => {
      if (ev.storageKey !== def.storageKey) return;
      const md = isObj(ev.object.metadata) ? ev.object.metadata : {};
      if (def.namespaced && r.namespace !== undefined && md.namespace !== r.namespace) return;
      const obj = handlers.present(def, ev.object);
      const now = matches(obj);
      const before = ev.prev ? matches(handlers.present(def, ev.prev)) : false;
      let type: string | undefined;
      if (ev.type === 'ADDED') type = now ? 'ADDED' : undefined;
      else if (ev.type === 'DELETED') type = now ? 'DELETED' : undefined;
      else type = now && before ? 'MODIFIED' : now ? 'ADDED' : before ? 'DELETED' : undefined;
      if (type) write(type, wrap(obj));
    };

    let unsubscribe = (): void => {};
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      unsubscribe();
      if (timer) clearTimeout(timer);
      watches.delete(finish);
      if (!res.writableEnded) res.end();
    };
    watches.add(finish);
    req.on('close', finish);
    res.on('error', finish);

    if (fromRv === undefined) {
      // No resourceVersion (or "0"): start with the current state as synthetic ADDED events.
      for (const o of store.list(def.storageKey, def.namespaced ? r.namespace : undefined)) {
        const obj = handlers.present(def, o);
        if (matches(obj)) write('ADDED', wrap(obj));
      }
      if (sendInitial) {
        write('BOOKMARK', { kind: def.kind, apiVersion: apiVersionOf(def),
          metadata: { resourceVersion: String(store.rv), annotations: { 'k8s.io/initial-events-end': 'true' } } });
      }
    } else {
      const events = store.since(fromRv);
      // A version ahead of ours (e.g. after a restart without state) is answered like a compacted one
      // so that clients relist instead of waiting forever.
      if (!events || fromRv > store.rv) {
        write('ERROR', expired(`too old resource version: ${fromRv} (${state.compactedRv + 1})`) as unknown as Obj);
        finish();
        return;
      }
      for (const ev of events) deliver(ev);
    }
    unsubscribe = store.subscribe(deliver);
    const timeout = Number(q.get('timeoutSeconds') ?? 0);
    if (timeout > 0) {
      timer = setTimeout(finish, timeout * 1000);
      timer.unref();
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const q = url.searchParams;
    const method = req.method ?? 'GET';
    opts.onRequest?.({ method, url: req.url ?? '', userAgent: req.headers['user-agent'] ?? '' });
    debug(`${method} ${req.url ?? ''} accept=${req.headers.accept ?? ''} ct=${req.headers['content-type'] ?? ''}`);
    if ((method === 'GET' || method === 'HEAD') && serveMeta(path, res)) return;
    const r = route(path);
    if (!r) throw pathNotFound();
    const { def, name, subresource } = r;
    const ns = r.namespace ?? '';
    const neg = negotiate(req.headers.accept);
    const wo = writeOptions(q);
    const isWatch = r.watch || q.get('watch') === 'true' || q.get('watch') === '1';

    if (method === 'GET') {
      if (isWatch) return serveWatch(req, res, r, q, neg);
      if (name !== undefined) {
        const obj = handlers.get(def, ns, name);
        if (neg.table) {
          const md = obj.metadata as Obj;
          send(res, 200, buildTable(neg.table, def.columns, [obj], { resourceVersion: md.resourceVersion ?? '' }, includeObject(q)));
        } else send(res, 200, obj);
        return;
      }
      const { items, listMeta } = handlers.list(def, r.namespace, q);
      if (neg.table) {
        send(res, 200, buildTable(neg.table, def.columns, items, listMeta, includeObject(q)));
        return;
      }
      const shown = def.listItemsTyped ? items : items.map(({ apiVersion: _a, kind: _k, ...rest }) => rest);
      send(res, 200, { kind: `${def.kind}List`, apiVersion: apiVersionOf(def), metadata: listMeta, items: shown });
      return;
    }
    const raw = await readBody(req);
    if (method === 'POST' && name === undefined) {
      if (def.namespaced && r.namespace === undefined) throw methodNotAllowed(method);
      const obj = handlers.create(def, ns, decodeObject(raw, req.headers['content-type']), wo);
      send(res, 201, obj, wo.warnings);
    } else if (method === 'PUT' && name !== undefined) {
      send(res, 200, handlers.update(def, ns, name, decodeObject(raw, req.headers['content-type']), subresource, wo), wo.warnings);
    } else if (method === 'PATCH' && name !== undefined) {
      const { obj, created } = handlers.patch(def, ns, name, req.headers['content-type'] ?? '', raw.toString('utf8'), subresource, wo);
      send(res, created ? 201 : 200, obj, wo.warnings);
    } else if (method === 'DELETE' && subresource === undefined) {
      const body = decodeObject(raw, 'application/json');
      const options: Obj = isObj(body) ? body : {};
      if (options.dryRun === undefined && wo.dryRun) options.dryRun = ['All'];
      wo.dryRun = Array.isArray(options.dryRun) && options.dryRun.includes('All');
      if (name === undefined) send(res, 200, handlers.deleteCollection(def, r.namespace, q, options, wo));
      else {
        const out = handlers.delete(def, ns, name, options, wo);
        send(res, out.code, out.body);
      }
    } else throw methodNotAllowed(method);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const status = e instanceof ApiError ? e.status : statusBody(500, 'InternalError', `Internal error occurred: ${(e as Error).message}`);
      debug(`-> ${status.code} ${status.message ?? ''}`);
      if (res.headersSent) {
        if (!res.writableEnded) res.end();
        return;
      }
      send(res, status.code, status);
    });
  });
  // Tests must be able to exit even if they forget stop(): neither the listener nor the accepted
  // connections keep the event loop alive (clients' own sockets do while they wait).
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.unref();
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (_e, socket: Socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.unref();
  const addr = server.address();
  port = typeof addr === 'object' && addr ? addr.port : 0;

  let stopped: Promise<void> | undefined;
  const api: KubeApiServer = {
    url: `http://127.0.0.1:${port}`,
    port,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        for (const w of [...watches]) w();
        server.close(() => resolve());
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
      });
      return stopped;
    },
    closeWatches() {
      for (const w of [...watches]) w();
    },
    compactHistory() {
      store.compact();
    },
  };
  states.set(api, state);
  return api;
}
