// Minimal typings for the parts of s3rver (3.7.1, no bundled types) that the test harness uses.
declare module 's3rver' {
  import type { IncomingMessage, ServerResponse } from 'node:http';
  import type { Readable } from 'node:stream';

  export interface S3rverOptions {
    port?: number;
    address?: string;
    silent?: boolean;
    directory?: string;
    configureBuckets?: Array<{ name: string }>;
    resetOnClose?: boolean;
    allowMismatchedSignatures?: boolean;
    vhostBuckets?: boolean;
  }

  export interface S3rverStoredObject {
    content: Readable | null;
    metadata: Record<string, string>;
  }

  export interface S3rverListedObject {
    key: string;
    size: number;
    lastModifiedDate: Date;
    metadata: Record<string, string>;
  }

  export interface S3rverFilesystemStore {
    listObjects(
      bucket: string,
      options: { prefix?: string; startAfter?: string; maxKeys?: number; delimiter?: string },
    ): Promise<{ objects: S3rverListedObject[]; commonPrefixes: string[]; isTruncated: boolean }>;
    getObject(bucket: string, key: string, options?: { start?: number; end?: number }): Promise<S3rverStoredObject | null>;
    putPart(bucket: string, uploadId: string, partNumber: number, content: Readable): Promise<{ size: number; md5: string }>;
  }

  export default class S3rver {
    constructor(options: S3rverOptions);
    readonly store: S3rverFilesystemStore;
    /** Creates the buckets named in `configureBuckets`. */
    configureBuckets(): Promise<void>;
    /** The Koa request listener. */
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
  }
}
