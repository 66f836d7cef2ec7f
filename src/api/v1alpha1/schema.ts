/**
 * THE schema of EtcdBackup: ajv validates specs with it (CLI and operator) and `etcd-backup crd`
 * turns it into the CRD's openAPIV3Schema. Keep it within what both accept: a structural schema
 * (every field typed, no $ref), JSON-schema keywords ajv knows, plus the x-kubernetes-* markers.
 * Defaults live here too, so the apiserver and the CLI default the same way.
 */
const secretRef = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1, maxLength: 253 } },
} as const;

const durationString = { type: 'string', maxLength: 64 } as const;

export const specSchema = {
  type: 'object',
  required: ['etcd', 'store'],
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
          items: { type: 'string', minLength: 1, maxLength: 1024 },
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
      properties: {
        s3: {
          type: 'object',
          required: ['bucket'],
          properties: {
            bucket: { type: 'string', minLength: 3, maxLength: 63 },
            prefix: { type: 'string', maxLength: 512, default: '' },
            region: { type: 'string', default: 'us-east-1' },
            endpoint: { type: 'string', default: '' },
            forcePathStyle: { type: 'boolean', default: false },
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
          properties: { path: { type: 'string', minLength: 1, maxLength: 4096 } },
        },
      },
    },
    fullSnapshot: {
      type: 'object',
      default: {},
      properties: {
        schedule: { type: 'string', default: '0 */1 * * *', description: 'Cron schedule in UTC.' },
        compression: { type: 'string', enum: ['gzip', 'none'], default: 'gzip' },
        timeout: { ...durationString, default: '15m' },
      },
    },
    deltaSnapshot: {
      type: 'object',
      default: {},
      properties: {
        period: { ...durationString, default: '20s', description: 'How often to poll the head revision; 0 disables deltas.' },
        chunkRevisions: { type: 'integer', minimum: 1, maximum: 1000000, default: 1000 },
        chunkParallelism: { type: 'integer', minimum: 1, maximum: 64, default: 4 },
      },
    },
    memory: {
      type: 'object',
      default: {},
      properties: {
        budget: {
          'x-kubernetes-int-or-string': true,
          anyOf: [{ type: 'integer' }, { type: 'string' }],
          default: '128Mi',
          description: 'Hard cap on bytes held for deltas and snapshot upload parts (Kubernetes quantity).',
        },
      },
    },
    retention: {
      type: 'object',
      default: {},
      properties: {
        policy: { type: 'string', enum: ['LimitBased', 'Exponential'], default: 'LimitBased' },
        maxFullSnapshots: { type: 'integer', minimum: 1, maximum: 10000, default: 7 },
      },
    },
    verification: {
      type: 'object',
      required: ['schedule'],
      description: 'Scheduled trial restore of the latest backup (full snapshot + deltas); absent means none.',
      properties: {
        schedule: { type: 'string', maxLength: 256, description: 'Cron schedule in UTC (5 fields).' },
      },
    },
    encryption: {
      type: 'object',
      required: ['keySecretRef'],
      properties: { keySecretRef: secretRef },
    },
    suspend: { type: 'boolean', default: false },
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
    deletionPolicy: { type: 'string', enum: ['Retain', 'Delete'], default: 'Retain' },
  },
} as const;

const condition = {
  type: 'object',
  required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'],
  properties: {
    type: { type: 'string' },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
    reason: { type: 'string' },
    message: { type: 'string' },
    lastTransitionTime: { type: 'string', format: 'date-time' },
    observedGeneration: { type: 'integer' },
  },
} as const;

export const statusSchema = {
  type: 'object',
  properties: {
    observedGeneration: { type: 'integer' },
    conditions: {
      type: 'array',
      items: condition,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    },
    lastFullSnapshot: {
      type: 'object',
      properties: {
        revision: { type: 'integer' },
        time: { type: 'string', format: 'date-time' },
        object: { type: 'string' },
        sizeBytes: { type: 'integer' },
        sha256: { type: 'string' },
        retainUntil: {
          type: 'string',
          format: 'date-time',
          description: 'S3 Object Lock: the snapshot cannot be deleted before this time.',
        },
        retentionMode: { type: 'string', description: 'S3 Object Lock mode of the snapshot (GOVERNANCE or COMPLIANCE).' },
      },
    },
    retention: {
      type: 'object',
      description: 'Objects the last retention run could not delete because they are still under S3 Object Lock.',
      properties: {
        lockedObjects: { type: 'integer' },
        lockedUntil: { type: 'string', format: 'date-time' },
        message: { type: 'string' },
      },
    },
    lastDeltaSnapshot: {
      type: 'object',
      properties: {
        fromRevision: { type: 'integer' },
        toRevision: { type: 'integer' },
        time: { type: 'string', format: 'date-time' },
        object: { type: 'string' },
      },
    },
    archivedRevision: { type: 'integer' },
    etcdRevision: { type: 'integer' },
    lagRevisions: { type: 'integer' },
    nextFullSnapshotTime: { type: 'string', format: 'date-time' },
    lastVerification: {
      type: 'object',
      description: 'The last successful scheduled verification (trial restore) of the latest backup.',
      properties: {
        time: { type: 'string', format: 'date-time' },
        revision: { type: 'integer' },
        keyCount: { type: 'integer' },
        contentHash: { type: 'string' },
      },
    },
    memory: {
      type: 'object',
      properties: { budgetBytes: { type: 'integer' }, peakBytes: { type: 'integer' } },
    },
  },
} as const;

/** The whole object, as the CRD's openAPIV3Schema. */
export const etcdBackupSchema = {
  type: 'object',
  required: ['spec'],
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    metadata: { type: 'object' },
    spec: specSchema,
    status: statusSchema,
  },
} as const;
