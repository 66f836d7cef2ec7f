import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * The IAM policy in docs/s3.md must grant exactly the S3 actions the code can send: nothing missing
 * (a user following the docs would hit AccessDenied), nothing extra (least privilege). The code side
 * is read from src/store: every @aws-sdk/client-s3 command it imports, lib-storage's Upload, and the
 * request parameters that need an action of their own.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** IAM actions of each S3 operation the store may send (AWS "Actions defined by Amazon S3"). */
const COMMAND_ACTIONS: Record<string, string[]> = {
  AbortMultipartUploadCommand: ['s3:AbortMultipartUpload'],
  CompleteMultipartUploadCommand: ['s3:PutObject'],
  CopyObjectCommand: ['s3:GetObject', 's3:PutObject'],
  CreateMultipartUploadCommand: ['s3:PutObject'],
  DeleteObjectCommand: ['s3:DeleteObject'],
  GetObjectCommand: ['s3:GetObject'],
  GetObjectLockConfigurationCommand: ['s3:GetBucketObjectLockConfiguration'],
  HeadObjectCommand: ['s3:GetObject'],
  ListMultipartUploadsCommand: ['s3:ListBucketMultipartUploads'],
  ListObjectsV2Command: ['s3:ListBucket'],
  ListObjectVersionsCommand: ['s3:ListBucketVersions'],
  PutObjectCommand: ['s3:PutObject'],
  UploadPartCopyCommand: ['s3:GetObject', 's3:PutObject'],
  // lib-storage: CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload.
  Upload: ['s3:PutObject', 's3:AbortMultipartUpload'],
};

/** Parameters (or response fields) that need an extra action when the code uses them. */
const PARAMETER_ACTIONS: Record<string, string> = {
  ObjectLockMode: 's3:PutObjectRetention',
  ObjectLockRetainUntilDate: 's3:GetObjectRetention', // HeadObject returns it only with this permission
  VersionId: 's3:DeleteObjectVersion',
  BypassGovernanceRetention: 's3:BypassGovernanceRetention',
};

function storeSources(): string {
  const dir = join(ROOT, 'src', 'store');
  return readdirSync(dir)
    .filter((name) => name.endsWith('.ts'))
    .map((name) => readFileSync(join(dir, name), 'utf8'))
    .join('\n');
}

function actionsTheCodeNeeds(source: string): Set<string> {
  const needed = new Set<string>();
  const commands = new Set([...source.matchAll(/new (\w+Command|Upload)\(/g)].map((m) => m[1]!));
  for (const command of commands) {
    const actions = COMMAND_ACTIONS[command];
    assert.ok(actions, `src/store sends ${command}: add its IAM actions to COMMAND_ACTIONS and to the policy in docs/s3.md`);
    for (const action of actions) needed.add(action);
  }
  for (const [parameter, action] of Object.entries(PARAMETER_ACTIONS)) {
    if (new RegExp(`\\b${parameter}\\b`).test(source)) needed.add(action);
  }
  return needed;
}

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: string | string[];
}

function documentedPolicy(): Statement[] {
  const doc = readFileSync(join(ROOT, 'docs', 's3.md'), 'utf8');
  const section = doc.slice(doc.indexOf('### IAM policy'));
  const block = /```json\n([\s\S]*?)\n```/.exec(section);
  assert.ok(block, 'docs/s3.md has a ```json block after "### IAM policy"');
  return (JSON.parse(block[1]!) as { Statement: Statement[] }).Statement;
}

const list = (value: string | string[]): string[] => (Array.isArray(value) ? value : [value]);

test('the IAM policy in docs/s3.md grants exactly the S3 actions the code sends', () => {
  const needed = actionsTheCodeNeeds(storeSources());
  const granted = new Set(documentedPolicy().flatMap((s) => (s.Effect === 'Allow' ? list(s.Action) : [])));
  assert.deepEqual([...needed].filter((a) => !granted.has(a)).sort(), [], 'actions the code needs but the policy lacks');
  assert.deepEqual([...granted].filter((a) => !needed.has(a)).sort(), [], 'actions the policy grants but the code never needs');
});

test('bucket-level actions name the bucket, object-level actions name objects under the prefix', () => {
  const bucketActions = new Set([
    's3:ListBucket',
    's3:ListBucketMultipartUploads',
    's3:ListBucketVersions',
    's3:GetBucketObjectLockConfiguration',
  ]);
  for (const statement of documentedPolicy()) {
    for (const action of list(statement.Action)) {
      for (const resource of list(statement.Resource)) {
        if (bucketActions.has(action)) assert.match(resource, /^arn:aws:s3:::[^/]+$/, `${action} on ${resource}`);
        else assert.match(resource, /^arn:aws:s3:::[^/]+\/.+\*$/, `${action} on ${resource}`);
      }
    }
  }
});

test('the scan sees a command the policy does not cover (the check can fail)', () => {
  assert.throws(() => actionsTheCodeNeeds('await client.send(new PutBucketPolicyCommand({}))'), /PutBucketPolicyCommand/);
  const needed = actionsTheCodeNeeds('new DeleteObjectCommand({ Bucket, Key, VersionId, BypassGovernanceRetention: true })');
  assert.deepEqual([...needed].sort(), ['s3:BypassGovernanceRetention', 's3:DeleteObject', 's3:DeleteObjectVersion']);
});
