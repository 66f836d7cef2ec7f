import type { Etcd3 } from 'etcd3';
import { clusterIdentity, createEtcdClient, type EtcdConnection } from '../etcd/client.js';
import { keyId } from '../crypto/encryption.js';
import { errorMessage, OperatorError, UsageError } from '../errors.js';
import { verifyBackup } from '../restore/verify.js';
import type { Logger } from '../observability/logger.js';
import { createStore } from '../store/factory.js';
import { classifyKeys, FULL_DIR, parseBackupKey, type FullSnapshotName } from '../archive/naming.js';
import { listBackupObjects, SHA256_METADATA_KEY, type ObjectStore } from '../store/object-store.js';
import { reachStatus } from '../restore/restore-plan.js';
import { OwnedStore } from '../store/owned-store.js';
import { planRetention } from '../store/retention.js';
import { deleteUnlessLocked } from '../store/delete-unless-locked.js';
import { describeLocked, retentionStatus, summariseLocked } from '../store/object-lock.js';
import { storeConfigFromSpec } from '../store/spec-config.js';
import { DeltaPoller, type DeltaProgress } from './delta-poller.js';
import { takeFullSnapshot, type FullSnapshotResult } from './full-snapshot.js';
import { compactNewestChain, type CompactResult } from './compaction.js';
import { MemoryBudget } from '../budget/memory-budget.js';
import { decideFullSnapshot, deltaChainTooLong, longestScheduleGapMs, nextScheduledRun, retryDelayMs } from './schedule.js';
import type { SupervisorReport, VerificationOutcome, WorkOutcome } from '../api/supervisor-report.js';
import type { BackupSupervisor, SupervisorConfig, SupervisorEvent } from './supervisor-types.js';

/** setTimeout cannot wait longer than 2^31-1 ms; re-evaluate the schedule at least hourly anyway. */
const MAX_TIMER_MS = 3_600_000;

/**
 * stop() cancels a running verification (its download and etcdctl stop, its trial etcd is killed)
 * and waits at most this long for it to end, below the operator's stop timeout: a replay blocked on
 * a store read notices only when that read ends. If the process exits first, the temp etcd's
 * watchdog kills it.
 */
const VERIFY_STOP_WAIT_MS = 20_000;

/** The restored backup differs from live etcd at the same revision. */
export class VerificationMismatchError extends OperatorError {
  constructor(
    message: string,
    readonly differences: string[],
  ) {
    super('VerificationFailed', message);
  }
}

/**
 * The timers the supervisor arms for its schedules. Injected with `now` so that a test can drive the
 * cron lifecycle with a fake clock: a timer fires when the test moves the clock past it.
 */
export interface SupervisorTimers {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

const REAL_TIMERS: SupervisorTimers = {
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout | undefined),
};

export interface SupervisorDependencies {
  now?: () => Date;
  /** Default: Node's setTimeout/clearTimeout. Use together with `now`. */
  timers?: SupervisorTimers;
  /** Injected store (tests wrap the real one to throttle or fail it). */
  store?: ObjectStore;
}

/**
 * Runs the backup of one etcd cluster (see BackupSupervisor). Full snapshots are serialized: a
 * scheduled one and one requested after lost revisions never run at once.
 */
export class Supervisor implements BackupSupervisor {
  readonly budget: MemoryBudget;
  private readonly now: () => Date;
  private store!: ObjectStore;
  private readonly injectedStore: ObjectStore | undefined;
  private client: Etcd3 | undefined;
  /** Snapshots get their own connection with a large HTTP/2 window (see EtcdConnection.bulkTransfer). */
  private snapshotClient: Etcd3 | undefined;
  private readonly reportListeners: Array<(report: SupervisorReport) => void> = [];
  private readonly eventListeners: Array<(event: SupervisorEvent) => void> = [];
  private readonly state: SupervisorReport;
  private readonly timers: SupervisorTimers;
  private fullTimer: unknown;
  private fullInFlight: Promise<FullSnapshotResult | undefined> | undefined;
  private verifyTimer: unknown;
  private verifyInFlight: Promise<VerificationOutcome | undefined> | undefined;
  private compactInFlight: Promise<CompactResult | undefined> | undefined;
  /** No compaction starts before this (ms since the epoch): the backoff after a failed one. */
  private compactNotBefore = 0;
  private readonly abort = new AbortController();
  private stopped = false;
  private poller: DeltaPoller | undefined;
  /** The last failure recorded in state.fullSnapshot was a failed store listing, not a snapshot. */
  private fullListingFailed = false;
  /** The poller's failedPolls already counted into state.delta. */
  private deltaFailedPollsSeen = 0;
  /** Retention came due while a verification read the store: applied when the verification ends. */
  private retentionDeferred = false;
  /**
   * The backup objects in the store and when each was stored: listed at start and by each retention
   * run, with every object this supervisor stores added as it goes. The recoverable window and the
   * replay length (maxDeltaRevisions) follow from it without listing the store at every delta.
   */
  private readonly storedAt = new Map<string, Date>();

  constructor(
    private readonly config: SupervisorConfig,
    private readonly logger: Logger,
    deps: SupervisorDependencies = {},
  ) {
    if (config.resolved.spec.encryption && !config.secrets.encryptionKey) {
      // Never back up in the clear what the spec says must be encrypted.
      throw new UsageError(`spec.encryption is set but no encryption key was given (Secret ${config.resolved.spec.encryption.keySecretRef.name}, data key "key")`);
    }
    this.now = deps.now ?? (() => new Date());
    this.timers = deps.timers ?? REAL_TIMERS;
    this.budget = new MemoryBudget(config.resolved.budgetBytes);
    this.injectedStore = deps.store;
    this.state = {
      memory: { budgetBytes: this.budget.limitBytes, peakBytes: 0, usedBytes: 0 },
      fullSnapshot: { consecutiveFailures: 0 },
      ...(config.resolved.deltaPeriodMs > 0 ? { delta: { consecutiveFailures: 0 } } : {}),
      ...(config.resolved.spec.verification ? { verification: { consecutiveFailures: 0 } } : {}),
      ...(config.resolved.spec.compaction ? { compaction: { consecutiveFailures: 0 } } : {}),
      bytesUploaded: 0,
      uploadedBytes: { full: 0, delta: 0 },
      cadence: {
        fullSnapshotIntervalSeconds: longestScheduleGapMs(config.resolved.spec.fullSnapshot.schedule, this.now()) / 1000,
        deltaPeriodSeconds: config.resolved.deltaPeriodMs / 1000,
        ...(config.resolved.spec.verification
          ? { verificationIntervalSeconds: longestScheduleGapMs(config.resolved.spec.verification.schedule, this.now()) / 1000 }
          : {}),
      },
      startTime: this.now().toISOString(),
    };
  }

  get connection(): EtcdConnection {
    const { etcdTls, etcdAuth } = this.config.secrets;
    return { endpoints: this.config.resolved.spec.etcd.endpoints, tls: etcdTls, auth: etcdAuth };
  }

  async start(): Promise<void> {
    const { spec } = this.config.resolved;
    const store =
      this.injectedStore ??
      (await createStore(storeConfigFromSpec(spec.store, this.config.secrets.s3Credentials), { budget: this.budget }));
    this.client = createEtcdClient(this.connection);
    // Writes only into a store of this etcd cluster (store marker; see OwnedStore).
    const client = this.client;
    this.store = new OwnedStore(store, { identify: () => clusterIdentity(client), owner: this.config.name, logger: this.logger, now: this.now });
    this.snapshotClient = createEtcdClient({ ...this.connection, bulkTransfer: true });
    this.logger.info('Started backup supervisor', {
      endpoints: this.connection.endpoints,
      store: this.store.describe(),
      schedule: this.config.resolved.spec.fullSnapshot.schedule,
      verificationSchedule: this.config.resolved.spec.verification?.schedule ?? 'none',
      budgetBytes: this.budget.limitBytes,
      // The key id names the key without revealing it (docs/encryption.md).
      encryption: this.config.secrets.encryptionKey ? `aes-256-gcm key id ${keyId(this.config.secrets.encryptionKey)}` : 'none',
    });
    if (this.store.cleanupIncomplete) {
      // Parts of uploads cut short by a crash are invisible but billed: remove them. No upload of this
      // backup outlives a full snapshot's timeout (deltas are small, mostly single requests), so an
      // older one was cut short by a process that died; a younger one may be a live writer's (rolling update).
      this.store.cleanupIncomplete(this.config.resolved.fullSnapshotTimeoutMs).catch((err: unknown) =>
        this.logger.warn('Failed to clean up incomplete uploads', { error: errorMessage(err) }),
      );
    }
    await this.listStoredObjects();
    // stop() may come while start() awaits: it stops only what exists by then, so start nothing after it
    // (a poller or timer armed after stop() would run on forever, a leak inside an inline operator).
    if (this.stopped) return;
    // Deltas first: the poller recovers its position from the chain as the last run left it, so a
    // catch-up full snapshot taken next does not make it jump past the revisions written while no
    // backup ran (those stay restorable from the older snapshot, as long as etcd still has them).
    if (this.config.resolved.deltaPeriodMs > 0) await this.startDeltas(this.client);
    if (this.stopped) {
      await this.poller?.stop().catch(() => undefined);
      return;
    }
    await this.scheduleFullSnapshot();
    if (this.stopped) {
      this.timers.clearTimeout(this.fullTimer);
      return;
    }
    this.scheduleVerification();
  }

  private async startDeltas(client: Etcd3): Promise<void> {
    const spec = this.config.resolved.spec;
    this.poller = new DeltaPoller({
      client,
      store: this.store,
      budget: this.budget,
      periodMs: this.config.resolved.deltaPeriodMs,
      chunkRevisions: spec.deltaSnapshot.chunkRevisions,
      parallelism: spec.deltaSnapshot.chunkParallelism,
      compression: spec.fullSnapshot.compression,
      encryptionKey: this.config.secrets.encryptionKey,
      logger: this.logger,
      // An upload must never wait for budget its own fetch holds: keep the store's buffers free per fetch.
      storeBufferBytes: this.store.streamReservationBytes ?? 0,
      // A delta longer than one request would need multipart buffers while fetches hold the rest.
      maxObjectBytes: this.store.singleRequestMaxBytes,
      now: this.now,
      onRevisionsLost: (lost) => this.onRevisionsLost(lost),
      onProgress: (progress) => this.onDeltaProgress(progress),
    });
    await this.poller.start();
  }

  /** etcd compacted revisions before they were archived: report them and restart the chain from a new snapshot. */
  private async onRevisionsLost(lost: { fromRevision: number; toRevision: number }): Promise<{ revision: number }> {
    this.state.revisionsLost = { ...lost, time: this.now().toISOString() };
    const message =
      `etcd compacted revisions ${lost.fromRevision}..${lost.toRevision} before they were archived; ` +
      'taking a full snapshot now and continuing after it';
    this.logger.error('Lost revisions to compaction', { fromRevision: lost.fromRevision, toRevision: lost.toRevision });
    this.emitEvent({ type: 'Warning', reason: 'RevisionsLost', message });
    this.emitReport();
    const snapshot = await this.takeFullSnapshotNow();
    if (!snapshot) throw new OperatorError('FullSnapshotFailed', 'the full snapshot after lost revisions failed; will retry');
    return { revision: snapshot.revision };
  }

  private onDeltaProgress(progress: DeltaProgress): void {
    const outcome = this.state.delta;
    if (!outcome) return;
    this.state.uploadedBytes.delta = progress.bytesUploaded;
    this.state.bytesUploaded = this.state.uploadedBytes.full + this.state.uploadedBytes.delta;
    if (!progress.waitingForFullSnapshot) {
      this.state.archivedRevision = progress.archivedRevision;
      this.state.etcdRevision = progress.etcdRevision;
      this.state.lagRevisions = progress.lagRevisions;
    }
    const last = progress.lastDelta;
    if (last && !this.storedAt.has(last.key)) this.noteStored([{ key: last.key, lastModified: last.time }]);
    if (last && last.key !== this.state.lastDeltaSnapshot?.object) {
      this.state.lastDeltaSnapshot = {
        fromRevision: last.fromRevision,
        toRevision: last.toRevision,
        time: last.time.toISOString(),
        object: last.key,
      };
      this.state.deltasCurrentTime = last.time.toISOString();
    }
    // Every failed poll counts; an Event only when the message changes (a repeating failure
    // would otherwise post one per period).
    const newFailures = progress.failedPolls - this.deltaFailedPollsSeen;
    this.deltaFailedPollsSeen = progress.failedPolls;
    if (progress.lastError !== undefined) {
      if (newFailures > 0) {
        const changed = progress.lastError !== outcome.lastError;
        this.recordFailure(outcome, undefined, progress.lastError);
        outcome.consecutiveFailures += newFailures - 1;
        // The poller's reason (EtcdUnavailable, StoreUnreachable) when it knows one; the Event's otherwise.
        outcome.lastErrorReason = progress.lastErrorReason ?? 'DeltaSnapshotFailed';
        if (changed) this.emitEvent({ type: 'Warning', reason: 'DeltaSnapshotFailed', message: progress.lastError });
      }
    } else if (!progress.waitingForFullSnapshot) {
      this.recordSuccess(outcome);
      if (progress.archivedRevision >= progress.etcdRevision) this.state.deltasCurrentTime = this.now().toISOString();
    }
    this.emitReport();
    this.boundDeltaChain();
    this.compactIfDue();
  }

  /**
   * spec.fullSnapshot.maxDeltaRevisions: once a restore to the latest point would replay more than
   * that, a full snapshot now, whatever the cron says. Not while one runs, and not after a failed one
   * (its retry timer is armed: triggering here too would retry at every delta).
   */
  private boundDeltaChain(): void {
    const max = this.config.resolved.maxDeltaRevisions;
    if (this.stopped || this.fullInFlight || this.state.fullSnapshot.consecutiveFailures > 0) return;
    if (!deltaChainTooLong(this.state.replayRevisions, max)) return;
    this.logger.info('Taking a full snapshot early: the delta chain passed maxDeltaRevisions', {
      replayRevisions: this.state.replayRevisions,
      maxDeltaRevisions: max,
    });
    this.takeFullSnapshotNow().catch(() => undefined);
  }

  /**
   * spec.compaction: once a restore would replay everyDeltaRevisions, fold the newest chain into a full
   * snapshot in a temporary etcd beside the worker (compactNewestChain), sparing the live etcd. One at a
   * time; not while a full snapshot or a verification runs (each loads this process or etcd); after a
   * failure, not before its backoff.
   */
  private compactIfDue(): void {
    const every = this.config.resolved.spec.compaction?.everyDeltaRevisions;
    if (every === undefined || this.stopped || this.compactInFlight || this.fullInFlight || this.verifyInFlight) return;
    if ((this.state.replayRevisions ?? 0) < every || Date.now() < this.compactNotBefore) return;
    this.compactInFlight = this.runCompaction().finally(() => {
      this.compactInFlight = undefined;
      if (this.retentionDeferred && !this.stopped) void this.applyRetention();
    });
  }

  private async runCompaction(): Promise<CompactResult | undefined> {
    const outcome = (this.state.compaction ??= { consecutiveFailures: 0 });
    const key = this.config.secrets.encryptionKey;
    const started = Date.now();
    this.logger.info('Starting compaction of the delta chain', { replayRevisions: this.state.replayRevisions });
    try {
      const result = await compactNewestChain({
        store: this.store,
        logger: this.logger,
        compression: this.config.resolved.spec.fullSnapshot.compression,
        encryptionKeys: key ? [key] : undefined,
        budget: this.budget,
        signal: this.abort.signal,
      });
      if (this.stopped) return undefined;
      this.recordSuccess(outcome);
      outcome.lastDurationSeconds = (Date.now() - started) / 1000;
      if (result.compacted) {
        const { snapshot } = result;
        this.noteStored([{ key: snapshot.key, lastModified: snapshot.time }]);
        this.state.uploadedBytes.full += snapshot.sizeBytes;
        this.state.bytesUploaded = this.state.uploadedBytes.full + this.state.uploadedBytes.delta;
        this.emitEvent({
          type: 'Normal',
          reason: 'BackupCompacted',
          message: `Compacted ${result.from} + ${result.revisionsFolded} delta revisions into ${snapshot.key} at revision ${snapshot.revision}`,
        });
      } else {
        this.logger.info('Nothing to compact', { why: result.why });
      }
      this.emitReport();
      return result;
    } catch (err) {
      if (this.stopped) return undefined;
      const message = `compaction failed: ${errorMessage(err)}`.replace(/\s*\n\s*/g, ' ');
      this.recordFailure(outcome, err, message);
      this.compactNotBefore = Date.now() + retryDelayMs(outcome.consecutiveFailures);
      this.logger.error('Failed to compact the delta chain', { error: message });
      this.emitEvent({ type: 'Warning', reason: 'CompactionFailed', message });
      this.emitReport();
      return undefined;
    }
  }

  /** Lists every backup object (at start); a failure leaves the window unknown until retention lists again. */
  private async listStoredObjects(): Promise<void> {
    try {
      this.noteStored(await listBackupObjects(this.store), { replace: true });
    } catch (err) {
      this.logger.warn('Failed to list the store for the recoverable window', { error: errorMessage(err) });
    }
  }

  /**
   * Records stored backup objects (all of them with `replace`), forgets deleted ones, and recomputes
   * what a restore reaches.
   */
  private noteStored(
    objects: Iterable<{ key: string; lastModified: Date }>,
    options: { replace?: boolean; forget?: readonly string[] } = {},
  ): void {
    if (options.replace) this.storedAt.clear();
    for (const key of options.forget ?? []) this.storedAt.delete(key);
    for (const object of objects) if (parseBackupKey(object.key)) this.storedAt.set(object.key, object.lastModified);
    const reach = reachStatus(classifyKeys(this.storedAt.keys()), [...this.storedAt].map(([key, lastModified]) => ({ key, lastModified })));
    delete this.state.recoverableWindow;
    delete this.state.replayRevisions;
    Object.assign(this.state, reach);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timers.clearTimeout(this.fullTimer);
    this.timers.clearTimeout(this.verifyTimer);
    this.abort.abort(new OperatorError('Stopped', 'supervisor stopped'));
    await this.poller?.stop().catch((err: unknown) => this.logger.warn('Delta poller stopped with an error', { error: errorMessage(err) }));
    await this.fullInFlight?.catch(() => undefined);
    await this.waitForVerification();
    await this.compactInFlight?.catch(() => undefined);
    this.client?.close();
    this.snapshotClient?.close();
    this.logger.info('Stopped backup supervisor');
  }

  report(): SupervisorReport {
    return structuredClone({
      ...this.state,
      memory: { budgetBytes: this.budget.limitBytes, peakBytes: this.budget.peakBytes, usedBytes: this.budget.usedBytes },
    });
  }

  onReport(listener: (report: SupervisorReport) => void): void {
    this.reportListeners.push(listener);
  }

  onEvent(listener: (event: SupervisorEvent) => void): void {
    this.eventListeners.push(listener);
  }

  /**
   * A full snapshot asked for by a person (the snapshot-requested-at annotation): taken now (or the
   * one already running is joined), its result reported in lastRequestedSnapshot under `requestedAt`.
   */
  async requestFullSnapshot(requestedAt: string): Promise<void> {
    if (this.state.lastRequestedSnapshot?.requestedAt === requestedAt) return;
    this.state.lastRequestedSnapshot = { requestedAt, phase: 'InProgress' };
    this.emitReport();
    const result = await this.takeFullSnapshotNow();
    if (this.state.lastRequestedSnapshot?.requestedAt !== requestedAt) return;
    this.state.lastRequestedSnapshot = result
      ? { requestedAt, phase: 'Succeeded', object: result.key, revision: result.revision, time: result.time.toISOString() }
      : { requestedAt, phase: 'Failed', message: this.state.fullSnapshot.lastError ?? 'the full snapshot did not complete' };
    this.emitReport();
  }

  /**
   * Takes a full snapshot now, or joins the one already running. After a successful one (and its
   * retention) the schedule decides again, once this one no longer counts as running: a tick that
   * passed meanwhile is then due at once instead of being joined to the snapshot that just ended,
   * which left no timer armed and stopped the schedule for good. A failed one arms its own retry.
   */
  async takeFullSnapshotNow(): Promise<FullSnapshotResult | undefined> {
    if (!this.fullInFlight) {
      const running = this.runFullSnapshot().finally(() => (this.fullInFlight = undefined));
      this.fullInFlight = running;
      running.then(
        (result) => {
          if (result) void this.scheduleFullSnapshot();
        },
        () => undefined,
      );
    }
    return this.fullInFlight;
  }

  /**
   * Verifies the latest backup now (trial restore of the newest full snapshot plus its deltas), or
   * joins the verification already running; the schedule continues from when it ends. Resolves with
   * the verification outcome, undefined when stopped.
   */
  async verifyNow(): Promise<VerificationOutcome | undefined> {
    if (!this.verifyInFlight) {
      this.verifyInFlight = this.runVerification().finally(() => {
        this.verifyInFlight = undefined;
        if (this.retentionDeferred && !this.stopped) void this.applyRetention();
        this.scheduleVerification();
      });
    }
    return this.verifyInFlight;
  }

  private scheduleVerification(): void {
    const schedule = this.config.resolved.spec.verification?.schedule;
    if (!schedule || this.stopped) return;
    this.timers.clearTimeout(this.verifyTimer);
    const now = this.now();
    // One at a time: the next run is computed when the last ended, so a slow one skips ticks.
    const delayMs = nextScheduledRun(schedule, now).getTime() - now.getTime();
    this.verifyTimer = this.timers.setTimeout(
      () => {
        if (delayMs <= MAX_TIMER_MS) this.verifyNow().catch(() => undefined);
        else this.scheduleVerification();
      },
      Math.max(0, Math.min(delayMs, MAX_TIMER_MS)),
    );
  }

  private async waitForVerification(): Promise<void> {
    const running = this.verifyInFlight;
    if (!running) return;
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      running.then(
        () => true,
        () => true,
      ),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), VERIFY_STOP_WAIT_MS))),
    ]);
    clearTimeout(timer);
    if (!finished) this.logger.warn('Stopped without waiting for the running verification to finish', { waitedSeconds: VERIFY_STOP_WAIT_MS / 1000 });
  }

  private async runVerification(): Promise<VerificationOutcome | undefined> {
    if (this.stopped || !this.client) return undefined;
    // The live comparison reads the whole keyspace from etcd, as a full snapshot does: never both at once.
    await this.fullInFlight?.catch(() => undefined);
    if (this.stopped) return undefined;
    const outcome = (this.state.verification ??= { consecutiveFailures: 0 });
    const key = this.config.secrets.encryptionKey;
    const started = Date.now();
    this.logger.info('Starting verification of the latest backup', { store: this.store.describe() });
    try {
      const result = await verifyBackup({
        store: this.store,
        logger: this.logger,
        encryptionKeys: key ? [key] : undefined,
        // Compared at the restored revision; a compacted (or unreadable) live etcd is reported, not a failure.
        live: this.connection,
        onLiveUnreadable: 'skip',
        signal: this.abort.signal,
      });
      if (result.comparison && !result.comparison.matches) {
        const { differences } = result.comparison;
        throw new VerificationMismatchError(
          `restored backup (${result.snapshot} + deltas) differs from live etcd at revision ${result.revision}: ` +
            differences.slice(0, 3).join('; ') +
            (differences.length > 3 ? `; ... (${differences.length} differences listed in the log)` : ''),
          differences,
        );
      }
      if (this.stopped) return undefined;
      const liveComparison = result.comparison
        ? `matches live etcd at revision ${result.revision}`
        : `not compared with live etcd: ${result.liveSkipped ?? 'no live cluster'}`;
      this.recordSuccess(outcome);
      Object.assign(outcome, {
        verifiedRevision: result.revision,
        keyCount: result.keyCount,
        contentHash: result.contentHash,
        snapshot: result.snapshot,
        liveComparison,
        lastDurationSeconds: (Date.now() - started) / 1000,
      });
      this.logger.info('Verified the latest backup', {
        snapshot: result.snapshot,
        revision: result.revision,
        keyCount: result.keyCount,
        contentHash: result.contentHash,
        liveComparison,
        seconds: (Date.now() - started) / 1000,
      });
      this.emitEvent({
        type: 'Normal',
        reason: 'BackupVerified',
        message: `Verified backup ${result.snapshot} + deltas: restored revision ${result.revision}, ${result.keyCount} keys, sha256 ${result.contentHash.slice(0, 12)}; ${liveComparison}`,
      });
    } catch (err) {
      if (this.stopped) return undefined;
      // One line: it goes into an Event and a condition message.
      const message = `verification of the latest backup failed: ${errorMessage(err)}`.replace(/\s*\n\s*/g, ' ');
      this.recordFailure(outcome, err, message);
      this.logger.error('Failed to verify the latest backup', {
        error: message,
        ...(err instanceof VerificationMismatchError ? { differences: err.differences } : {}),
        seconds: (Date.now() - started) / 1000,
      });
      this.emitEvent({ type: 'Warning', reason: 'VerificationFailed', message });
    }
    this.emitReport();
    return structuredClone(outcome);
  }

  private async latestFullSnapshot(): Promise<(FullSnapshotName & { size: number }) | undefined> {
    const objects = await this.store.list(FULL_DIR);
    const latest = classifyKeys(objects.map((o) => o.key)).fulls.at(-1);
    return latest && { ...latest, size: objects.find((o) => o.key === latest.key)?.size ?? 0 };
  }

  /**
   * The newest stored full snapshot as status shows it after a restart: size from the listing,
   * sha256 and exact time from its metadata (older objects without `time` keep the key's second).
   */
  private async storedFullSnapshot(latest: FullSnapshotName & { size: number }): Promise<NonNullable<SupervisorReport['lastFullSnapshot']>> {
    const facts = { revision: latest.revision, time: latest.time.toISOString(), object: latest.key, sizeBytes: latest.size };
    try {
      const { body, metadata } = await this.store.get(latest.key, { signal: this.abort.signal });
      // Only the metadata is wanted: drop the body unread (its checksum check then never runs).
      body.on('error', () => undefined);
      body.destroy();
      const time = metadata.time !== undefined && !Number.isNaN(Date.parse(metadata.time)) ? metadata.time : facts.time;
      return { ...facts, time, ...(metadata[SHA256_METADATA_KEY] ? { sha256: metadata[SHA256_METADATA_KEY] } : {}) };
    } catch (err) {
      this.logger.warn('Could not read the newest full snapshot\'s metadata', { object: latest.key, error: errorMessage(err) });
      return facts;
    }
  }

  private async scheduleFullSnapshot(): Promise<void> {
    if (this.stopped) return;
    const schedule = this.config.resolved.spec.fullSnapshot.schedule;
    let last: Date | undefined;
    try {
      const latest = await this.latestFullSnapshot();
      last = latest?.time;
      if (latest && !this.state.lastFullSnapshot) {
        const stored = { ...(await this.storedFullSnapshot(latest)), ...retentionStatus(await this.store.retentionOf?.(latest.key)) };
        // A snapshot taken meanwhile is newer than what the store listed.
        this.state.lastFullSnapshot ??= stored;
      }
    } catch (err) {
      // The store is unreachable: decide again soon, with backoff. Never snapshot instead: whether
      // one is due is unknown until the store lists (an S3 hiccup after a snapshot took a second one).
      this.recordFailure(this.state.fullSnapshot, err);
      this.fullListingFailed = true;
      this.logger.warn('Failed to list the store', { error: errorMessage(err) });
      this.emitReport();
      if (!this.stopped) {
        this.timers.clearTimeout(this.fullTimer);
        this.fullTimer = this.timers.setTimeout(
          () => void this.scheduleFullSnapshot(),
          retryDelayMs(this.state.fullSnapshot.consecutiveFailures),
        );
      }
      return;
    }
    if (this.fullListingFailed) {
      // Only the listing had failed, and it works again: no snapshot failed.
      this.fullListingFailed = false;
      const outcome = this.state.fullSnapshot;
      outcome.consecutiveFailures = 0;
      delete outcome.lastError;
      delete outcome.lastErrorReason;
    }
    const now = this.now();
    const decision = decideFullSnapshot(schedule, last, now);
    this.state.nextFullSnapshotTime = decision.next.toISOString();
    if (decision.dueNow) {
      this.takeFullSnapshotNow().catch(() => undefined);
      return;
    }
    this.emitReport();
    this.armFullTimer(decision.next.getTime() - now.getTime());
  }

  private armFullTimer(delayMs: number): void {
    if (this.stopped) return;
    this.timers.clearTimeout(this.fullTimer);
    const wait = Math.max(0, Math.min(delayMs, MAX_TIMER_MS));
    const fire = delayMs <= MAX_TIMER_MS;
    this.fullTimer = this.timers.setTimeout(() => {
      if (fire) this.takeFullSnapshotNow().catch(() => undefined);
      else void this.scheduleFullSnapshot();
    }, wait);
  }

  private async runFullSnapshot(): Promise<FullSnapshotResult | undefined> {
    if (this.stopped || !this.snapshotClient) return undefined;
    const spec = this.config.resolved.spec;
    const timeout = AbortSignal.timeout(this.config.resolved.fullSnapshotTimeoutMs);
    const signal = AbortSignal.any([this.abort.signal, timeout]);
    const started = Date.now();
    this.logger.info('Starting full snapshot', { store: this.store.describe() });
    let result: FullSnapshotResult | undefined;
    try {
      result = await takeFullSnapshot({
        client: this.snapshotClient,
        endpoints: spec.etcd.endpoints,
        store: this.store,
        compression: spec.fullSnapshot.compression,
        encryptionKey: this.config.secrets.encryptionKey,
        budget: this.budget,
        signal,
        now: this.now,
      });
    } catch (err) {
      if (this.stopped) return undefined;
      const message = timeout.aborted
        ? `full snapshot timed out after ${spec.fullSnapshot.timeout}`
        : errorMessage(err);
      this.recordFailure(this.state.fullSnapshot, err, message);
      const delay = retryDelayMs(this.state.fullSnapshot.consecutiveFailures);
      this.logger.error('Failed to take full snapshot', { error: message, retryInSeconds: delay / 1000 });
      this.emitEvent({ type: 'Warning', reason: 'FullSnapshotFailed', message });
      this.emitReport();
      this.armFullTimer(delay);
      return undefined;
    }
    this.state.lastFullSnapshot = {
      revision: result.revision,
      time: result.time.toISOString(),
      object: result.key,
      sizeBytes: result.sizeBytes,
      sha256: result.sha256,
      ...retentionStatus(result.retention),
    };
    this.noteStored([{ key: result.key, lastModified: result.time }]);
    this.state.uploadedBytes.full += result.sizeBytes;
    this.state.bytesUploaded = this.state.uploadedBytes.full + this.state.uploadedBytes.delta;
    this.recordSuccess(this.state.fullSnapshot);
    this.state.fullSnapshot.lastDurationSeconds = (Date.now() - started) / 1000;
    this.logger.info('Took full snapshot', {
      object: result.key,
      revision: result.revision,
      sizeBytes: result.sizeBytes,
      sha256: result.sha256,
      seconds: (Date.now() - started) / 1000,
    });
    this.emitEvent({
      type: 'Normal',
      reason: 'FullSnapshotTaken',
      message: `Took full snapshot ${result.key} at revision ${result.revision} (${result.sizeBytes} bytes)`,
    });
    await this.applyRetention();
    return result;
  }

  private async applyRetention(): Promise<void> {
    // A verification restores the newest snapshot and its deltas: deleting them under it (a new
    // snapshot with maxFullSnapshots 1) made it report a false VerificationFailed.
    // Compaction reads the newest chain the same way.
    this.retentionDeferred = this.verifyInFlight !== undefined || this.compactInFlight !== undefined;
    if (this.retentionDeferred) {
      this.logger.info('Deferred retention until the running verification or compaction ends');
      return;
    }
    try {
      const objects = await this.store.list('');
      const listing = classifyKeys(objects.map((o) => o.key));
      const plan = planRetention(listing, this.config.resolved.spec.retention, this.now());
      // Merged, not replaced: a delta stored while this listed is already noted and not in `objects`.
      this.noteStored(objects);
      if (plan.held) {
        this.logger.warn('Held retention: deleting nothing', { why: plan.held });
        this.emitEvent({ type: 'Warning', reason: 'RetentionHeld', message: plan.held });
        return;
      }
      const locked = await deleteUnlessLocked(this.store, plan.deleteKeys);
      const kept = new Set(locked.map((l) => l.key));
      this.noteStored([], { forget: plan.deleteKeys.filter((key) => !kept.has(key)) });
      const deleted = plan.deleteKeys.length - locked.length;
      if (deleted > 0) {
        this.logger.info('Applied retention', { deleted, keptFullSnapshots: plan.keep.length });
      }
      if (locked.length > 0) {
        // Not a failure: the lock is the point. The objects go in a later run, once it has ended.
        const summary = summariseLocked(locked);
        const message = `Retention kept ${describeLocked(summary)}`;
        this.logger.info('Kept objects under S3 Object Lock', {
          locked: summary.count,
          lockedUntil: summary.until?.toISOString(),
          sample: summary.sample,
        });
        this.emitEvent({ type: 'Normal', reason: 'RetentionLocked', message });
        this.state.retention = {
          lockedObjects: summary.count,
          ...(summary.until ? { lockedUntil: summary.until.toISOString() } : {}),
          message,
        };
      } else {
        this.state.retention = { lockedObjects: 0 };
      }
    } catch (err) {
      // Retention is retried after the next snapshot; a failure here loses nothing.
      this.logger.warn('Failed to apply retention', { error: errorMessage(err) });
    }
  }

  private recordSuccess(outcome: WorkOutcome): void {
    outcome.lastSuccessTime = this.now().toISOString();
    outcome.consecutiveFailures = 0;
    delete outcome.lastError;
    delete outcome.lastErrorReason;
  }

  private recordFailure(outcome: WorkOutcome, err: unknown, message = errorMessage(err)): void {
    outcome.lastFailureTime = this.now().toISOString();
    outcome.lastError = message;
    // Without a reason of its own, the condition names the work that failed (FullSnapshotFailed...).
    if (err instanceof OperatorError) outcome.lastErrorReason = err.reason;
    else delete outcome.lastErrorReason;
    outcome.consecutiveFailures += 1;
  }

  private emitReport(): void {
    const report = this.report();
    for (const listener of this.reportListeners) listener(report);
  }

  private emitEvent(event: SupervisorEvent): void {
    for (const listener of this.eventListeners) listener(event);
  }
}
