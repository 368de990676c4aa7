/**
 * One kind of record in the state bucket: the check a value read from the network (or left by
 * an older version) must pass before its readers trust its fields. Its name, the first token of
 * its keys, is its line in lib/state-bucket.ts's RECORDS.
 */
export interface RecordKind<T> {
  /** True when `v` has the fields this kind's readers rely on. */
  readonly check: (v: Record<string, unknown>) => boolean;
  /** Carries the record's type; never set. */
  readonly type?: T;
}

/** Declares a kind of record: `define<Shape>(check)`. */
export function define<T>(check: (v: Record<string, unknown>) => boolean): RecordKind<T> {
  return { check };
}

/** True when every key of `keys` is a number in `v`. */
export function numbers(v: Record<string, unknown>, ...keys: string[]): boolean {
  return keys.every((k) => typeof v[k] === 'number');
}

/** True when every key of `keys` is a string in `v`. */
export function strings(v: Record<string, unknown>, ...keys: string[]): boolean {
  return keys.every((k) => typeof v[k] === 'string');
}
