import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from './logger.js';

/** A probe answers with ok, or with a one-line reason for failing it. */
export type Probe = () => { ok: true } | { ok: false; reason: string };

export interface HttpServerOptions {
  port: number;
  /** Default 0.0.0.0 so that kubelet probes and Prometheus reach the pod; tests pass 127.0.0.1. */
  host?: string;
  registry: Registry;
  healthz: Probe;
  readyz: Probe;
  logger: Logger;
}

export interface RunningHttpServer {
  port: number;
  close(): Promise<void>;
}

/** Serves /healthz (liveness), /readyz (readiness) and /metrics (Prometheus text format). */
export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const probe = path === '/healthz' ? options.healthz : path === '/readyz' ? options.readyz : undefined;
    if (probe) {
      const result = probe();
      res.writeHead(result.ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(result.ok ? 'ok\n' : `${result.reason}\n`);
      return;
    }
    if (path === '/metrics') {
      options.registry
        .metrics()
        .then((text) => {
          res.writeHead(200, { 'content-type': options.registry.contentType });
          res.end(text);
        })
        .catch((err: unknown) => {
          options.logger.warn('Failed to render metrics', { error: err instanceof Error ? err.message : String(err) });
          res.writeHead(500).end();
        });
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
  });
  // Probes must answer even when a slow client holds a connection open.
  server.keepAliveTimeout = 5000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  options.logger.info('Serving health probes and metrics', { port, paths: ['/healthz', '/readyz', '/metrics'] });
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
