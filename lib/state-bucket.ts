import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import type { RecordKind } from './state/record';
import { agent } from './state/agent';
import { applied } from './state/applied';
import { baseline } from './state/baseline';
import { checkpoint, checkpoints } from './state/checkpoint';
import { doubts } from './state/doubts';
import { fence } from './state/fence';
import { lost } from './state/lost';
import { rebase } from './state/rebase';
import { trim } from './state/trim';
import { standby } from './state/standby';
import { verify } from './state/verify';
import { watch } from './state/watch';

export type { AgentHeartbeat } from './state/agent';
export type { AppliedRecord } from './state/applied';
export type { BaselineReport } from './state/baseline';
export type { CheckpointRecord, StandbyCheckpoint, StandbyCheckpoints } from './state/checkpoint';
export type { DoubtsReport } from './state/doubts';
export type { FenceRecord } from './state/fence';
export type { LostRecord } from './state/lost';
export type { RebaseRecord } from './state/rebase';
export type { TrimRecord } from './state/trim';
export type { StandbyRecord } from './state/standby';
export { standbyKey } from './state/standby';
export type { VerifyReport } from './state/verify';
export type { WatchStatus } from './state/watch';

/**
 * The state bucket's protocol: every record agents, standbys and commands leave for each other
 * in `<stream>_STATE`. A record is named `<kind>.<name>`; each kind is a file in lib/state/ (its
 * shape and its check) and a line in RECORDS. Records come over the network and from older
 * versions: each is checked for the fields its readers rely on, and one that lacks them reads
 * as absent, never as a crash.
 */

/** Every kind of record, one line each: a new kind is a file in lib/state/ and a line here. */
const RECORDS = { agent, applied, fence, doubts, watch, baseline, verify, standby, lost, rebase, trim, checkpoint, checkpoints };

type Records = typeof RECORDS;
/** Every kind of record and its shape. */
export type StateRecords = { [K in keyof Records]: Records[K] extends RecordKind<infer T> ? T : never };
export type StateKind = keyof StateRecords;

/** The kinds of record there are. */
export const STATE_KINDS = Object.keys(RECORDS) as StateKind[];

/** The key of `kind`'s record for `name` (a journal, a standby, a baseline or verify name). */
export function stateKey(kind: StateKind, name: string): string {
  return `${kind}.${name}`;
}

/** The kind and name a key stands for, when it is a record of this protocol. */
export function parseStateKey(key: string): { kind: StateKind; name: string } | undefined {
  const dot = key.indexOf('.');
  const kind = key.slice(0, dot);
  if (dot < 1 || !Object.hasOwn(RECORDS, kind)) return undefined;
  return { kind: kind as StateKind, name: key.slice(dot + 1) };
}

/** The record a bucket entry holds, or undefined when it was deleted or is not a record of `kind`. */
export function parseState<K extends StateKind>(kind: K, e: KvEntry | null | undefined): StateRecords[K] | undefined {
  if (e === null || e === undefined || e.operation !== 'PUT') return undefined;
  return parseRecord(kind, e.string());
}

/** A record of `kind` from its JSON text (a bucket entry's, or a notice's), or undefined when it is not one. */
export function parseRecord<K extends StateKind>(kind: K, text: string): StateRecords[K] | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  return typeof v === 'object' && v !== null && RECORDS[kind].check(v as Record<string, unknown>) ? (v as StateRecords[K]) : undefined;
}

/**
 * Reads `kind.name`; undefined when absent, deleted or malformed. Rejects when the bucket cannot
 * be read: "no heartbeat" and "could not ask" mean different things to promote and status.
 */
export async function readState<K extends StateKind>(kv: KV, kind: K, name: string): Promise<StateRecords[K] | undefined> {
  return parseState(kind, await kv.get(stateKey(kind, name)));
}

/** Writes `kind.name`; rejects as the put does. */
export async function writeState<K extends StateKind>(kv: KV, kind: K, name: string, value: StateRecords[K]): Promise<void> {
  await kv.put(stateKey(kind, name), JSON.stringify(value));
}

/** Each record of `kind` as it is written, from the current one on, until the watch is stopped. */
export async function* watchState<K extends StateKind>(kv: KV, kind: K, name: string): AsyncGenerator<StateRecords[K]> {
  for await (const e of await kv.watch({ key: stateKey(kind, name) })) {
    const r = parseState(kind, e);
    if (r !== undefined) yield r;
  }
}

/** One record of a kind as a watch of all its names sees it: undefined `record` when it was deleted or is malformed. */
export interface StateEntry<K extends StateKind> {
  name: string;
  /** What a compare-and-set (updateState) of this record must name. */
  revision: number;
  record: StateRecords[K] | undefined;
}

/** Every record of `kind`, whatever its name, as each is written, from the current ones on, until the watch is stopped. */
export async function* watchStates<K extends StateKind>(kv: KV, kind: K): AsyncGenerator<StateEntry<K>> {
  const w = await watchKind(kv, kind);
  try {
    yield* w.records;
  } finally {
    w.stop();
  }
}

/**
 * Writes `kind.name` only if its revision is still `revision` (a compare-and-set): the new
 * revision, or undefined when another write came first. Rejects as the put does otherwise.
 */
export async function updateState<K extends StateKind>(kv: KV, kind: K, name: string, value: StateRecords[K], revision: number): Promise<number | undefined> {
  try {
    return await kv.update(stateKey(kind, name), JSON.stringify(value), revision);
  } catch (err) {
    const lost = err instanceof JetStreamApiError
      && (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);
    if (lost) return undefined;
    throw err;
  }
}

/** A watch of every record of one kind: each as written (undefined once deleted or when malformed), the current ones first. */
export interface KindWatch<K extends StateKind> {
  records: AsyncIterable<StateEntry<K>>;
  stop(): void;
}

/** Watches every `kind.*` record; rejects as the watch does (a user not allowed to read the bucket). */
export async function watchKind<K extends StateKind>(kv: KV, kind: K): Promise<KindWatch<K>> {
  const w = await kv.watch({ key: `${kind}.>` });
  async function* records(): AsyncGenerator<StateEntry<K>> {
    for await (const e of w) {
      const key = parseStateKey(e.key);
      if (key?.kind === kind) yield { name: key.name, revision: e.revision, record: parseState(kind, e) };
    }
  }
  return { records: records(), stop: () => w.stop() };
}
