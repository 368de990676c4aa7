import { ConfinementError } from './errors';

/**
 * Names and keys of configuration stores and queues. They arrive from the network and
 * become file names under the standby's state directory (`config/<store>.json`,
 * `queues/<name>.json`) and property paths in a replica: each is checked so that
 * neither can reach outside its directory nor into an object's prototype.
 */

/** Longest store or queue name. */
export const MAX_OBJECT_NAME = 128;
/** Letters, digits and `_ - . : @`; never starting with a dot (so never `.` or `..`), no separator. */
const NAME = /^[A-Za-z0-9_:@-][A-Za-z0-9_.:@-]*$/;
/** A configuration key path: at most this many segments of at most this many characters. */
export const MAX_KEY_DEPTH = 32;
export const MAX_KEY_SEGMENT = 256;
/** Segments that would reach an object's prototype when a replica is updated in place. */
const FORBIDDEN_SEGMENTS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);
/** Longest job id. */
export const MAX_JOB_ID = 64;
const JOB_ID = /^[A-Za-z0-9_.:-]+$/;

/** Throws ConfinementError unless `name` is usable as a store or queue name (and a file name). */
export function checkObjectName(name: unknown, what = 'name'): string {
  if (typeof name !== 'string' || name === '') throw new ConfinementError(`${what} is empty or not a string`);
  if (name.length > MAX_OBJECT_NAME) throw new ConfinementError(`${what} ${JSON.stringify(name.slice(0, 40))}… is longer than ${MAX_OBJECT_NAME} characters`);
  if (!NAME.test(name)) throw new ConfinementError(`${what} ${JSON.stringify(name)} must be letters, digits and _ - . : @, not starting with a dot`);
  return name;
}

/** True when `name` passes checkObjectName. */
export function isObjectName(name: unknown): name is string {
  return typeof name === 'string' && name.length <= MAX_OBJECT_NAME && NAME.test(name);
}

/** Throws ConfinementError unless `key` is a usable configuration key path. */
export function checkConfigKey(key: unknown): string[] {
  if (!Array.isArray(key)) throw new ConfinementError('config key is not a list of segments');
  if (key.length > MAX_KEY_DEPTH) throw new ConfinementError(`config key has ${key.length} segments, more than ${MAX_KEY_DEPTH}`);
  for (const seg of key) {
    if (typeof seg !== 'string' || seg === '' || seg.length > MAX_KEY_SEGMENT) {
      throw new ConfinementError(`config key segment ${JSON.stringify(seg)} is not a string of 1-${MAX_KEY_SEGMENT} characters`);
    }
    if (FORBIDDEN_SEGMENTS.has(seg)) throw new ConfinementError(`config key segment "${seg}" is refused (it would reach a prototype)`);
  }
  return key as string[];
}

/** True when `id` is a usable job id. */
export function isJobId(id: unknown): id is string {
  return typeof id === 'string' && id.length <= MAX_JOB_ID && JOB_ID.test(id);
}

/**
 * Turns anything into a valid object name, for names the agent makes itself (a queue
 * named after the file and line that created it): invalid characters become `_`.
 */
export function toObjectName(raw: string): string {
  let s = raw.replace(/[^A-Za-z0-9_.:@-]/g, '_').replace(/^\.+/, '_');
  if (s.length > MAX_OBJECT_NAME) s = s.slice(s.length - MAX_OBJECT_NAME);
  return s === '' ? '_' : s.replace(/^\./, '_');
}
