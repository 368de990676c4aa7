import * as path from 'node:path';
import { checkObjectName, toObjectName } from '../../lib/objects';
import { DEFAULTS } from '../../lib/settings';

const NAME = Symbol.for('understudy.queueName');
type Named = { [NAME]?: string };

/** Frames of our own code and of the queue libraries are not "where the queue was created". */
const SKIP = /[\\/](?:understudy[\\/]dist|dist[\\/]agent|node_modules[\\/](?:fastq|p-queue|better-queue|import-in-the-middle|require-in-the-middle))[\\/]|^node:|\(node:/;

/**
 * The file and line of the application code that created a queue, as a queue name
 * (`server.js:42`): stable across restarts of the same code, which is what lets the
 * standby match the jobs of one run with the next.
 */
export function creationSite(): string {
  const saved = Error.stackTraceLimit;
  Error.stackTraceLimit = DEFAULTS.queueSiteFrames;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = saved;
  for (const line of stack.split('\n').slice(1)) {
    if (SKIP.test(line)) continue;
    const m = /\(?((?:file:\/\/)?[^()\s]+):(\d+):\d+\)?\s*$/.exec(line);
    if (m !== null) return toObjectName(`${path.basename(m[1])}:${m[2]}`);
  }
  return 'queue';
}

/** Gives queue `q` its default name, unless it already has one. */
export function tagQueue(q: object, name: string): void {
  const n = q as Named;
  if (n[NAME] === undefined) Object.defineProperty(q, NAME, { value: name, writable: true, configurable: true, enumerable: false });
}

/** The name jobs of `q` are journaled under: given by nameQueue, or else where it was created. */
export function queueName(q: object): string {
  const n = q as Named;
  if (n[NAME] === undefined) tagQueue(q, creationSite());
  return n[NAME] as string;
}

/**
 * Names queue `q` for the journal. Jobs already enqueued keep the name they were
 * journaled under (their completion is journaled there too); new jobs use this one.
 */
export function setQueueName(q: object, name: string): void {
  if (typeof q !== 'object' || q === null) throw new TypeError('nameQueue: the queue must be an object');
  checkObjectName(name, 'nameQueue: queue name');
  Object.defineProperty(q, NAME, { value: name, writable: true, configurable: true, enumerable: false });
}
