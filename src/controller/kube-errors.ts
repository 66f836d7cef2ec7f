import { ApiException } from '@kubernetes/client-node';

/**
 * The HTTP status of a Kubernetes API failure: client-node 1.x throws ApiException with `.code`;
 * its Watch throws plain errors with `.statusCode`. Undefined for network errors.
 */
export function httpStatus(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  if (err && typeof err === 'object') {
    const { code, statusCode } = err as { code?: unknown; statusCode?: unknown };
    if (typeof statusCode === 'number') return statusCode;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

export const isNotFound = (err: unknown): boolean => httpStatus(err) === 404;
export const isConflict = (err: unknown): boolean => httpStatus(err) === 409;

/** One line for logs and conditions: the API's Status message when there is one, never a whole body. */
export function kubeErrorMessage(err: unknown): string {
  if (err instanceof ApiException) {
    try {
      const body = JSON.parse(String(err.body)) as { message?: unknown };
      if (typeof body.message === 'string') return `HTTP ${err.code}: ${body.message}`;
    } catch {
      // not JSON: fall through
    }
    return `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}
