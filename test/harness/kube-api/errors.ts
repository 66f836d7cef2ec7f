// metav1.Status bodies exactly as the real apiserver sends them, so clients that branch on
// `reason`/`code`/`details` (client-go, client-node, kubectl) behave as against a real cluster.

export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

/** Thrown by handlers; the server turns it into the Status body and HTTP code it carries. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(readonly status: Status) {
    super(status.message);
    Object.setPrototypeOf(this, ApiError.prototype);
  }
}

/** What messages name: the resource ("secrets", "etcdbackups.etcdbackup.io") and the kind. */
export interface ResourceRef {
  group: string;
  plural: string;
  kind: string;
}

export function qualifiedResource(r: ResourceRef): string {
  return r.group ? `${r.plural}.${r.group}` : r.plural;
}

export function statusBody(code: number, reason: string, message: string, details?: StatusDetails): Status {
  const s: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  if (details) s.details = details;
  return s;
}

export function failure(code: number, reason: string, message: string, details?: StatusDetails): ApiError {
  return new ApiError(statusBody(code, reason, message, details));
}

// Real NotFound/AlreadyExists/Conflict details carry the *resource* (plural) in `kind`.
function resourceDetails(r: ResourceRef, name: string): StatusDetails {
  return r.group ? { name, group: r.group, kind: r.plural } : { name, kind: r.plural };
}

export function notFound(r: ResourceRef, name: string): ApiError {
  return failure(404, 'NotFound', `${qualifiedResource(r)} "${name}" not found`, resourceDetails(r, name));
}

export function alreadyExists(r: ResourceRef, name: string): ApiError {
  return failure(409, 'AlreadyExists', `${qualifiedResource(r)} "${name}" already exists`, resourceDetails(r, name));
}

export function conflict(r: ResourceRef, name: string, why?: string): ApiError {
  const tail = why ?? 'the object has been modified; please apply your changes to the latest version and try again';
  return failure(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(r)} "${name}": ${tail}`,
    resourceDetails(r, name));
}

export function badRequest(message: string): ApiError {
  return failure(400, 'BadRequest', message);
}

export function pathNotFound(): ApiError {
  return failure(404, 'NotFound', 'the server could not find the requested resource', {});
}

export function methodNotAllowed(method: string): ApiError {
  return failure(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource (${method})`, {});
}

export function unsupportedMediaType(contentType: string, accepted: string[]): ApiError {
  return failure(415, 'UnsupportedMediaType',
    `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`,
    { causes: [{ reason: 'UnexpectedHeader', message: `unsupported media type ${contentType}`, field: 'Content-Type' }] });
}

export function expired(message: string): Status {
  return statusBody(410, 'Expired', message);
}

/** Field error as built by k8s.io/apimachinery/pkg/util/validation/field. */
export interface FieldError {
  field: string;
  type: 'FieldValueRequired' | 'FieldValueInvalid' | 'FieldValueNotSupported' | 'FieldValueTypeInvalid' |
    'FieldValueForbidden' | 'FieldValueTooLong' | 'FieldValueTooMany' | 'FieldValueDuplicate';
  /** Detail after the "Invalid value: X: " prefix, already formatted. */
  detail: string;
}

export function invalid(r: ResourceRef, name: string, errors: FieldError[]): ApiError {
  const causes = errors.map((e) => ({ reason: e.type, message: e.detail, field: e.field }));
  const lines = errors.map((e) => `${e.field}: ${e.detail}`);
  const summary = lines.length === 1 ? lines[0] : `[${lines.join(', ')}]`;
  const kindGroup = r.group ? `${r.kind}.${r.group}` : r.kind;
  const details: StatusDetails = { name, kind: r.kind, causes };
  if (r.group) details.group = r.group;
  return failure(422, 'Invalid', `${kindGroup} "${name}" is invalid: ${summary}`, details);
}

/** Go's %v-ish rendering used in "Invalid value: X" messages. */
export function renderValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === undefined) return 'null';
  return JSON.stringify(v);
}

export const fieldErrors = {
  required: (field: string, detail = ''): FieldError =>
    ({ field, type: 'FieldValueRequired', detail: detail ? `Required value: ${detail}` : 'Required value' }),
  invalid: (field: string, value: unknown, detail: string): FieldError =>
    ({ field, type: 'FieldValueInvalid', detail: `Invalid value: ${renderValue(value)}: ${detail}` }),
  notSupported: (field: string, value: unknown, allowed: unknown[]): FieldError =>
    ({ field, type: 'FieldValueNotSupported',
      detail: `Unsupported value: ${renderValue(value)}: supported values: ${allowed.map(renderValue).join(', ')}` }),
  forbidden: (field: string, detail: string): FieldError => ({ field, type: 'FieldValueForbidden', detail: `Forbidden: ${detail}` }),
};
