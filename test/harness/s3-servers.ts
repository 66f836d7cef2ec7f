import { startTestMinio } from './minio.js';
import { startTestS3, type TestS3 } from './s3.js';
import { minioBinary, skipUnlessBuilt } from './test-tools.js';

/** One S3 server the S3 suites run against: s3rver always, MinIO when it is built. */
export interface S3ServerKind {
  readonly name: 's3rver' | 'minio';
  start(): Promise<TestS3>;
  /** node:test's `skip` option: false, or the line that says how to build the server. */
  readonly skip: false | string;
  /** True when a wrong secret access key (with the right key id) is refused: MinIO, not s3rver. */
  readonly verifiesSignatures: boolean;
}

export const S3_SERVERS: readonly S3ServerKind[] = [
  { name: 's3rver', start: () => startTestS3(), skip: false, verifiesSignatures: false },
  { name: 'minio', start: () => startTestMinio(), skip: skipUnlessBuilt(minioBinary(), 'MinIO'), verifiesSignatures: true },
];
