/**
 * In-process Kubernetes API test server speaking the real REST protocol (JSON) on 127.0.0.1, good
 * enough for kubectl 1.32 and @kubernetes/client-node 1.4.0. See kube-api/ for the parts.
 *
 * Restart: a server started with `{ port, state: serverState(old) }` keeps the old server's objects,
 * resourceVersions and watch history (an apiserver restart over the same etcd). Without `state`
 * it starts empty (only the default namespaces), and watches from a resourceVersion it never had
 * get 410 Gone so that clients relist.
 */
export { startKubeApiServer, serverState } from './kube-api/server.js';
export type { KubeApiServer, KubeApiServerOptions } from './kube-api/server.js';
export type { KubeApiState } from './kube-api/store.js';
