import { EventsV1Api, PatchStrategy, setHeaderOptions, V1MicroTime, type KubeConfig } from '@kubernetes/client-node';
import { API_VERSION, KIND } from '../api/v1alpha1/etcd-backup-types.js';
import type { Logger } from '../observability/logger.js';
import { kubeErrorMessage, isNotFound } from './kube-errors.js';

export const REPORTING_CONTROLLER = 'etcdbackup.io/operator';

/** The object an Event is about. */
export interface EventSubject {
  namespace: string;
  name: string;
  uid?: string;
  resourceVersion?: string;
}

export interface EventInfo {
  type: 'Normal' | 'Warning';
  /** PascalCase, e.g. FullSnapshotTaken, RevisionsLost, SupervisorCrashed. */
  reason: string;
  /** PascalCase verb of what the controller did, e.g. Backup, Restart, Validate. */
  action: string;
  note: string;
}

export interface EventRecorder {
  /** Never throws: an Event that cannot be written is logged and dropped. */
  record(subject: EventSubject, event: EventInfo): Promise<void>;
}

/**
 * Records Kubernetes Events (events.k8s.io/v1). A repeat of the same event for the same object within
 * `seriesWindowMs` updates the existing Event's series count instead of creating a new object, as
 * client-go's recorder does, so a failing backup does not flood the namespace.
 */
export class KubeEventRecorder implements EventRecorder {
  private readonly api: EventsV1Api;
  private readonly recent = new Map<string, { eventName: string; count: number; firstSeen: number }>();

  constructor(
    kc: KubeConfig,
    private readonly instance: string,
    private readonly logger: Logger,
    private readonly seriesWindowMs = 10 * 60_000,
  ) {
    this.api = kc.makeApiClient(EventsV1Api);
  }

  async record(subject: EventSubject, event: EventInfo): Promise<void> {
    const key = [subject.namespace, subject.name, subject.uid, event.type, event.reason, event.note].join('\u0000');
    const now = Date.now();
    this.prune(now);
    try {
      const previous = this.recent.get(key);
      if (previous) {
        previous.count += 1;
        try {
          await this.api.patchNamespacedEvent(
            {
              namespace: subject.namespace,
              name: previous.eventName,
              body: { series: { count: previous.count, lastObservedTime: new V1MicroTime() } },
            },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          );
          return;
        } catch (err) {
          // Expired or deleted meanwhile: start a new Event.
          if (!isNotFound(err)) throw err;
          this.recent.delete(key);
        }
      }
      const created = await this.api.createNamespacedEvent({
        namespace: subject.namespace,
        body: {
          metadata: { name: eventName(subject.name), namespace: subject.namespace },
          eventTime: new V1MicroTime(),
          reportingController: REPORTING_CONTROLLER,
          reportingInstance: this.instance,
          action: event.action,
          reason: event.reason,
          note: event.note.slice(0, 1024),
          type: event.type,
          regarding: {
            apiVersion: API_VERSION,
            kind: KIND,
            namespace: subject.namespace,
            name: subject.name,
            uid: subject.uid,
            resourceVersion: subject.resourceVersion,
          },
        },
      });
      if (created.metadata?.name) this.recent.set(key, { eventName: created.metadata.name, count: 1, firstSeen: now });
    } catch (err) {
      this.logger.warn('Failed to record Event', {
        namespace: subject.namespace,
        name: subject.name,
        reason: event.reason,
        error: kubeErrorMessage(err),
      });
    }
  }

  private prune(now: number): void {
    for (const [key, entry] of this.recent) if (now - entry.firstSeen > this.seriesWindowMs) this.recent.delete(key);
  }
}

/**
 * `<object name>.<unix nanoseconds in hex>`, as client-go's recorders name Events. Not generateName
 * `<name>.`: a real kube-apiserver validates generateName as a name prefix, and one ending in '.'
 * is refused (422), so no Event was ever written there.
 */
export function eventName(objectName: string, nowMs = Date.now()): string {
  const nanos = BigInt(nowMs) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
  return `${objectName}.${nanos.toString(16)}`;
}
