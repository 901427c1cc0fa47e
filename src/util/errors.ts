/**
 * One error type for every user-facing failure, so HTTP, IPC and peer frames can all answer with a
 * stable machine-readable `code`, a human `message` naming the problem, and (for HTTP) a status.
 */
export type ErrorCode =
  | 'bad_request'
  | 'not_found'
  | 'too_large'
  | 'unavailable'
  | 'timeout'
  | 'overloaded'
  | 'not_owner'
  | 'conflict'
  | 'internal'
  | 'unauthorized';

const STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  not_found: 404,
  too_large: 413,
  unavailable: 503,
  // A coordinator deadline is an unmet quorum like any other (issue contract: 503 naming how many answered).
  timeout: 503,
  overloaded: 503,
  not_owner: 409,
  conflict: 409,
  internal: 500,
  unauthorized: 401,
};

/** Every error code, in a fixed order (metrics index their counters by it). */
export const ERROR_CODES: readonly ErrorCode[] = Object.freeze(Object.keys(STATUS) as ErrorCode[]);

export class RingkvError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'RingkvError';
    this.code = code;
    this.details = details;
  }
  get status(): number {
    return STATUS[this.code];
  }
  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }
}

export function badRequest(message: string, details?: Record<string, unknown>): RingkvError {
  return new RingkvError('bad_request', message, details);
}

/** Crash loudly on a broken invariant: in tests this fails fast instead of corrupting data. */
export function invariant(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(`invariant violated: ${message}`);
}

export function asRingkvError(err: unknown): RingkvError {
  if (err instanceof RingkvError) return err;
  const e = err as { code?: unknown; message?: unknown } | null;
  if (e && typeof e.code === 'string' && e.code in STATUS && typeof e.message === 'string') {
    return new RingkvError(e.code as ErrorCode, e.message);
  }
  return new RingkvError('internal', err instanceof Error ? err.message : String(err));
}
