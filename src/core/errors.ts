/** Every failure skiff reports is a SkiffError; `code` says what kind, the CLI maps it to an exit status. */
export type ErrorCode =
  | 'ERR_INVALID_REFERENCE'
  | 'ERR_UNKNOWN_TRANSPORT'
  | 'ERR_IMAGE_NOT_FOUND'
  | 'ERR_MANIFEST_UNKNOWN'
  | 'ERR_BLOB_UNKNOWN'
  | 'ERR_DIGEST_MISMATCH'
  | 'ERR_SIZE_MISMATCH'
  | 'ERR_INVALID_MANIFEST'
  | 'ERR_INVALID_CONFIG'
  | 'ERR_UNSUPPORTED'
  | 'ERR_NO_PLATFORM'
  | 'ERR_CONVERSION'
  | 'ERR_UNSAFE_PATH'
  | 'ERR_TRUNCATED'
  | 'ERR_INVALID_ARCHIVE'
  | 'ERR_DESTINATION'
  | 'ERR_ABORTED'
  | 'ERR_USAGE'
  | 'ERR_UNAUTHORIZED'
  | 'ERR_NETWORK'
  | 'ERR_REGISTRY'
  | 'ERR_BUILD'
  | 'ERR_IO';

export class SkiffError extends Error {
  readonly code: ErrorCode;
  /** A transient failure (network, 5xx, 429): trying the same thing again may succeed. */
  retryable: boolean;
  /** The CLI's exit status for this error, where a command documents its own (podman's rmi); else by code. */
  readonly exitCode: number | undefined;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean; exitCode?: number }) {
    super(message, options);
    this.name = 'SkiffError';
    this.code = code;
    this.retryable = options?.retryable ?? code === 'ERR_NETWORK';
    this.exitCode = options?.exitCode;
  }
}

export function isRetryableError(e: unknown): boolean {
  return e instanceof SkiffError && e.retryable;
}

/** The codes that mean "the image (or the named part of it) does not exist": skopeo exits 2 for those. */
const NOT_FOUND: ReadonlySet<ErrorCode> = new Set(['ERR_IMAGE_NOT_FOUND', 'ERR_MANIFEST_UNKNOWN']);

export function exitCodeFor(err: unknown): number {
  if (err instanceof SkiffError && err.exitCode !== undefined) return err.exitCode;
  if (err instanceof SkiffError && err.code === 'ERR_ABORTED') return 130; // interrupted, as a shell reports SIGINT
  return err instanceof SkiffError && NOT_FOUND.has(err.code) ? 2 : 1;
}

/** Prefix an error's message with what was being done, keeping its code; non-Skiff errors become ERR_IO. */
export function wrapError(context: string, err: unknown): SkiffError {
  if (err instanceof SkiffError) return new SkiffError(err.code, `${context}: ${err.message}`, { cause: err, retryable: err.retryable });
  const e = err as NodeJS.ErrnoException;
  if (e && e.code === 'ENOENT') {
    return new SkiffError('ERR_IMAGE_NOT_FOUND', `${context}: ${e.message}`, { cause: err });
  }
  return new SkiffError('ERR_IO', `${context}: ${e?.message ?? String(err)}`, { cause: err });
}

/** The cause chain, outermost first, for --debug. */
export function causeChain(err: unknown): string[] {
  const out: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 16; depth++) {
    if (cur instanceof Error) {
      out.push(`${cur.name}${(cur as { code?: string }).code ? ` [${(cur as { code?: string }).code}]` : ''}: ${cur.message}`);
      if (cur.stack && depth === 0) out.push(cur.stack.split('\n').slice(1, 6).join('\n'));
      cur = cur.cause;
    } else {
      out.push(String(cur));
      break;
    }
  }
  return out;
}
