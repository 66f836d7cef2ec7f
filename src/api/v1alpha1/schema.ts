/**
 * THE schema of EtcdBackup: ajv validates specs with it (CLI and operator) and `etcd-backup crd`
 * turns it into the CRD's openAPIV3Schema. Keep it within what both accept: a structural schema
 * (every field typed, no $ref), JSON-schema keywords ajv knows, plus the x-kubernetes-* markers.
 * Defaults live here too, so the apiserver and the CLI default the same way. Every field has a
 * description (`kubectl explain etcdbackup.spec` shows them; a unit test checks); cross-field rules
 * are CEL `x-kubernetes-validations` from ./cel-rules.ts.
 */
import {
  budgetMinimumRule,
  budgetRangeRule,
  compactionBelowBoundRule,
  CRON_PATTERN,
  DURATION_PATTERN,
  durationRule,
  MAX_CHUNK_PARALLELISM,
  QUANTITY_PATTERN,
} from './cel-rules.js';

/** spec.fullSnapshot.maxDeltaRevisions: the default (also what 0 means), and the most it may be. */
export const DEFAULT_MAX_DELTA_REVISIONS = 1_000_000;
export const MAX_DELTA_REVISIONS_LIMIT = 1_000_000_000_000;

const secretRef = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1, maxLength: 253, description: 'Name of a Secret in the EtcdBackup\'s namespace.' } },
} as const;

const durationString = { type: 'string', maxLength: 64, pattern: DURATION_PATTERN } as const;
const cronString = { type: 'string', maxLength: 256, pattern: CRON_PATTERN } as const;

export const specSchema = {
  type: 'object',
  required: ['etcd', 'store'],
  description: 'What to back up, where to, how often and within which memory budget.',
  'x-kubernetes-validations': [
    {
      rule: "!has(self.runner) || self.runner != 'pod' || has(self.store.s3)",
      message: "runner pod needs an s3 store (a local path would be on the worker pod's filesystem)",
      fieldPath: '.runner',
      reason: 'FieldValueInvalid',
    },
    budgetMinimumRule(),
    compactionBelowBoundRule(DEFAULT_MAX_DELTA_REVISIONS),
  ],
  properties: {
    etcd: {
      type: 'object',
      required: ['endpoints'],
      description: 'How to reach the etcd cluster to back up.',
      properties: {
        endpoints: {
          type: 'array',
          minItems: 1,
          maxItems: 16,
          items: {
            type: 'string',
            minLength: 1,
            maxLength: 1024,
            'x-kubernetes-validations': [
              { rule: "self.startsWith('http://') || self.startsWith('https://')", message: 'must be an http:// or https:// URL' },
            ],
          },
          description: 'etcd client URLs (http:// or https://); the operator talks to the first that answers.',
        },
        tlsSecretRef: { ...secretRef, description: 'Secret with ca.crt, tls.crt, tls.key.' },
        credentialsSecretRef: { ...secretRef, description: 'Secret with username and password.' },
        insecure: {
          type: 'boolean',
          description:
            'Allow sending the credentialsSecretRef password to http:// endpoints without TLS. The operator refuses that otherwise.',
        },
      },
    },
    store: {
      type: 'object',
      description: 'Where backups go: exactly one of s3 or local.',
      'x-kubernetes-validations': [{ rule: 'has(self.s3) != has(self.local)', message: 'exactly one of s3 or local must be set' }],
      properties: {
        s3: {
          type: 'object',
          required: ['bucket'],
          description: 'An S3 (or S3-compatible) bucket.',
          properties: {
            bucket: { type: 'string', minLength: 3, maxLength: 63, description: 'Bucket name.' },
            prefix: { type: 'string', maxLength: 512, default: '', description: 'Key prefix of this backup inside the bucket.' },
            region: { type: 'string', default: 'us-east-1', description: 'Bucket region.' },
            endpoint: {
              type: 'string',
              default: '',
              description: 'http(s) URL of an S3-compatible server (MinIO, Ceph...); empty means AWS.',
              'x-kubernetes-validations': [
                {
                  rule: "self == '' || self.startsWith('http://') || self.startsWith('https://')",
                  message: 'must be an http:// or https:// URL (or empty for AWS)',
                },
              ],
            },
            forcePathStyle: {
              type: 'boolean',
              default: false,
              description: 'Address the bucket as a path (endpoint/bucket/key), as most S3-compatible servers need.',
            },
            credentialsSecretRef: { ...secretRef, description: 'Secret with accessKeyId and secretAccessKey.' },
            objectLock: {
              type: 'object',
              required: ['mode', 'retainFor'],
              description:
                'S3 Object Lock: write every backup object with this retention, so that nobody can delete it before ' +
                'it ends (the bucket must be created with Object Lock enabled). Retention and deletionPolicy Delete ' +
                'leave locked objects in place and report them. Absent: no explicit retention (a bucket default ' +
                'retention still applies and is honoured).',
              properties: {
                mode: {
                  type: 'string',
                  enum: ['GOVERNANCE', 'COMPLIANCE'],
                  description:
                    'COMPLIANCE: nobody, not even the account root, can delete or shorten the lock. GOVERNANCE: only ' +
                    'principals with s3:BypassGovernanceRetention can.',
                },
                retainFor: {
                  ...durationString,
                  description: 'Go duration each object stays locked after it is written, e.g. 720h (30 days).',
                  'x-kubernetes-validations': [durationRule("duration(self) >= duration('1s')", 'must be a duration of at least 1s (e.g. 720h)')],
                },
              },
            },
            insecure: {
              type: 'boolean',
              description:
                'Allow credentialsSecretRef with an http:// endpoint: signed requests, the session token and the data travel without TLS. The operator refuses that otherwise.',
            },
          },
        },
        local: {
          type: 'object',
          required: ['path'],
          description: "A directory on the operator's filesystem (a mounted volume).",
          properties: {
            path: {
              type: 'string',
              minLength: 1,
              maxLength: 4096,
              description: 'Absolute path of the directory.',
              'x-kubernetes-validations': [{ rule: "self.startsWith('/')", message: 'must be an absolute path' }],
            },
          },
        },
      },
    },
    fullSnapshot: {
      type: 'object',
      default: {},
      description: 'Full snapshots of the etcd database on a schedule.',
      properties: {
        schedule: {
          ...cronString,
          default: '0 */1 * * *',
          description: 'Cron schedule in UTC: 5 fields (minute hour day-of-month month day-of-week) or @hourly, @daily...',
        },
        compression: {
          type: 'string',
          enum: ['gzip', 'zstd', 'none'],
          default: 'zstd', // = DEFAULT_COMPRESSION (src/archive/compression.ts); test/unit/compression.test.ts checks
          description: 'gzip (.gz) or zstd (.zst), both compressed in parallel blocks; restore reads every format.',
        },
        timeout: {
          ...durationString,
          default: '15m',
          description: 'How long one snapshot may take (Go duration, e.g. 15m) before it is abandoned and retried.',
          'x-kubernetes-validations': [durationRule("duration(self) > duration('0s')", 'must be a positive duration (e.g. 15m)')],
        },
        maxDeltaRevisions: {
          type: 'integer',
          minimum: 0,
          maximum: MAX_DELTA_REVISIONS_LIMIT,
          default: DEFAULT_MAX_DELTA_REVISIONS,
          description:
            'Bounds restore time: when more revisions than this are archived in deltas after the newest full snapshot ' +
            '(what a restore to the latest point replays), a full snapshot is taken at once, whatever the schedule says. ' +
            '0 means the default (1000000).',
        },
      },
    },
    deltaSnapshot: {
      type: 'object',
      default: {},
      description: 'Revision history between full snapshots, polled in chunks.',
      properties: {
        period: {
          ...durationString,
          default: '20s',
          description: 'How often to poll the head revision (Go duration, at least 1s); 0 disables deltas.',
          'x-kubernetes-validations': [
            durationRule(
              "duration(self) == duration('0s') || duration(self) >= duration('1s')",
              'must be at least 1s (or 0 to disable deltas)',
            ),
          ],
        },
        chunkRevisions: {
          type: 'integer',
          minimum: 1,
          maximum: 1000000,
          default: 1000,
          description: 'Most revisions one chunk (one stored delta object) holds.',
        },
        chunkParallelism: {
          type: 'integer',
          minimum: 1,
          maximum: MAX_CHUNK_PARALLELISM,
          default: 4,
          description: 'Chunks fetched at once when catching up; memory.budget must hold this many maximal revisions.',
        },
      },
    },
    memory: {
      type: 'object',
      default: {},
      description: 'The hard memory cap of the backup worker.',
      properties: {
        budget: {
          'x-kubernetes-int-or-string': true,
          anyOf: [{ type: 'integer' }, { type: 'string' }],
          // For integers (bytes) only; strings are checked by the pattern and the CEL rule.
          minimum: 1,
          maxLength: 64,
          pattern: QUANTITY_PATTERN,
          'x-kubernetes-validations': [budgetRangeRule],
          default: '128Mi',
          description: 'Hard cap on bytes held for deltas and snapshot upload parts (Kubernetes quantity).',
        },
      },
    },
    retention: {
      type: 'object',
      default: {},
      description: 'Which stored full snapshots to keep; deltas older than the oldest kept one are deleted with it.',
      properties: {
        policy: {
          type: 'string',
          enum: ['LimitBased', 'Exponential'],
          default: 'LimitBased',
          description: 'LimitBased keeps the newest maxFullSnapshots; Exponential thins older ones out (hourly, daily, weekly).',
        },
        maxFullSnapshots: {
          type: 'integer',
          minimum: 1,
          maximum: 10000,
          default: 7,
          description: 'Most full snapshots kept.',
        },
      },
    },
    compaction: {
      type: 'object',
      required: ['everyDeltaRevisions'],
      description:
        'Offline compaction in the worker: the newest full snapshot and its deltas are restored into a temporary etcd ' +
        'beside the worker (not the live etcd) and stored as a new full snapshot, as `etcd-backup compact` does; ' +
        'absent means none. The worker needs the etcd programs, as for verification.',
      properties: {
        everyDeltaRevisions: {
          type: 'integer',
          minimum: 1,
          maximum: MAX_DELTA_REVISIONS_LIMIT,
          description:
            'Compact once a restore to the latest point would replay this many delta revisions; below ' +
            'fullSnapshot.maxDeltaRevisions, which takes a full snapshot from the live etcd instead.',
        },
      },
    },
    verification: {
      type: 'object',
      required: ['schedule'],
      description: 'Scheduled trial restore of the latest backup (full snapshot + deltas); absent means none.',
      properties: {
        schedule: { ...cronString, description: 'Cron schedule in UTC (5 fields or @daily...).' },
      },
    },
    encryption: {
      type: 'object',
      required: ['keySecretRef'],
      description: 'AES-256-GCM encryption of stored objects; absent means none.',
      properties: { keySecretRef: { ...secretRef, description: 'Secret with the key (see docs/encryption.md).' } },
    },
    suspend: { type: 'boolean', default: false, description: 'Stop taking backups (stored ones are kept).' },
    runner: {
      type: 'string',
      enum: ['operator', 'pod'],
      default: 'operator',
      description:
        'Where the backup worker runs: operator (a child process of the operator) or pod (a one-replica Deployment ' +
        'the operator creates, running `etcd-backup run`, so that Kubernetes schedules workers across nodes).',
    },
    pod: {
      type: 'object',
      description: 'Settings of the worker Deployment when runner is pod.',
      properties: {
        image: {
          type: 'string',
          maxLength: 1024,
          description: "Worker image; default: the operator's --worker-image (or $ETCD_BACKUP_WORKER_IMAGE).",
        },
        nodeSelector: {
          type: 'object',
          additionalProperties: { type: 'string' },
          description: 'Node labels the worker pod must match.',
        },
      },
    },
    deletionPolicy: {
      type: 'string',
      enum: ['Retain', 'Delete'],
      default: 'Retain',
      description: 'What happens to stored backups when the EtcdBackup is deleted: Retain keeps them, Delete removes them.',
    },
  },
} as const;

const condition = {
  type: 'object',
  required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'],
  description: 'A metav1.Condition (docs/operator.md lists every type and reason).',
  properties: {
    type: { type: 'string', description: 'Condition type, e.g. Ready, Reconciling, Stalled.' },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'], description: 'True, False or Unknown.' },
    reason: { type: 'string', description: 'PascalCase reason for the status.' },
    message: { type: 'string', description: 'What happened, for people.' },
    lastTransitionTime: { type: 'string', format: 'date-time', description: 'When status last changed.' },
    observedGeneration: { type: 'integer', description: 'The metadata.generation the condition was computed for.' },
  },
} as const;

const time = (what: string) => ({ type: 'string', format: 'date-time', description: what }) as const;
const integer = (what: string) => ({ type: 'integer', description: what }) as const;
const text = (what: string) => ({ type: 'string', description: what }) as const;

export const statusSchema = {
  type: 'object',
  description: 'What the operator observed; rebuilt on every reconcile from the store and the worker.',
  properties: {
    observedGeneration: integer('The metadata.generation the status was computed for.'),
    conditions: {
      type: 'array',
      items: condition,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
      description: 'Ready, Reconciling, Stalled and the per-activity conditions.',
    },
    lastFullSnapshot: {
      type: 'object',
      description: 'The newest full snapshot in the store.',
      properties: {
        revision: integer('etcd revision the snapshot holds.'),
        time: time('When it was stored.'),
        object: text('Object key in the store.'),
        sizeBytes: integer('Stored size in bytes.'),
        sha256: text('sha256 of the plain snapshot.'),
        retainUntil: time('S3 Object Lock: the snapshot cannot be deleted before this time.'),
        retentionMode: text('S3 Object Lock mode of the snapshot (GOVERNANCE or COMPLIANCE).'),
      },
    },
    retention: {
      type: 'object',
      description: 'Objects the last retention run could not delete because they are still under S3 Object Lock.',
      properties: {
        lockedObjects: integer('How many objects retention had to keep because they are locked.'),
        lockedUntil: time('When the last of those locks expires.'),
        message: text('What retention could not delete, for people.'),
      },
    },
    lastDeltaSnapshot: {
      type: 'object',
      description: 'The newest delta object in the store.',
      properties: {
        fromRevision: integer('First revision it holds.'),
        toRevision: integer('Last revision it holds.'),
        time: time('When it was stored.'),
        object: text('Object key in the store.'),
      },
    },
    archivedRevision: integer('Every etcd revision up to this one is in the store.'),
    etcdRevision: integer('Head revision of etcd at the last poll.'),
    lagRevisions: integer('Revisions written to etcd but not archived yet.'),
    nextFullSnapshotTime: time('When the next scheduled full snapshot is due.'),
    recoverableWindow: {
      type: 'object',
      description:
        'The revisions a restore can reach: from the oldest full snapshot whose deltas join up with the newer ones ' +
        'to the end of the contiguous deltas after the newest full snapshot.',
      properties: {
        firstRevision: integer('Oldest revision a restore can reach (a full snapshot).'),
        firstTime: time('When that full snapshot was stored.'),
        lastRevision: integer('Newest revision a restore can reach.'),
        lastTime: time('When the last object needed to reach it was stored (restore --to-time compares with this).'),
      },
    },
    replayRevisions: integer(
      'Delta revisions a restore to the latest point would replay now (spec.fullSnapshot.maxDeltaRevisions bounds it).',
    ),
    lastVerification: {
      type: 'object',
      description: 'The last successful scheduled verification (trial restore) of the latest backup.',
      properties: {
        time: time('When it ran.'),
        revision: integer('Revision restored.'),
        keyCount: integer('Keys in the restored data.'),
        contentHash: text('Hash of the restored keys and values.'),
      },
    },
    lastRequestedSnapshot: {
      type: 'object',
      description: 'The full snapshot asked for with the etcdbackup.io/snapshot-requested-at annotation (once per value).',
      properties: {
        requestedAt: text('The annotation value this answers.'),
        phase: { type: 'string', enum: ['InProgress', 'Succeeded', 'Failed'], description: 'InProgress, Succeeded or Failed.' },
        object: text('Object key of the snapshot in the store.'),
        revision: integer('etcd revision it holds.'),
        time: time('When it was stored.'),
        message: text('Why it failed.'),
      },
    },
    memory: {
      type: 'object',
      description: "The worker's memory budget use.",
      properties: {
        budgetBytes: integer('spec.memory.budget in bytes.'),
        peakBytes: integer('Most bytes held from the budget since the worker started.'),
      },
    },
  },
} as const;

/** The whole object, as the CRD's openAPIV3Schema. */
export const etcdBackupSchema = {
  type: 'object',
  description: 'Continuous backup of one etcd cluster to object storage (full snapshots on cron plus chunked deltas).',
  required: ['spec'],
  properties: {
    apiVersion: { type: 'string', description: 'etcdbackup.io/v1alpha1' },
    kind: { type: 'string', description: 'EtcdBackup' },
    metadata: { type: 'object' },
    spec: specSchema,
    status: statusSchema,
  },
} as const;
