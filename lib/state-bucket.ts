import type { KV, KvEntry } from '@nats-io/kv';
import type { LostRange, OriginState, UncleanEnd } from './spool';

/**
 * The state bucket's protocol: every record agents, standbys and commands leave for each other
 * in `<stream>_STATE`, its key and its shape, in one place. A record is named `<kind>.<name>`.
 * Records come over the network and from older versions: each is checked for the fields its
 * readers rely on, and one that lacks them reads as absent, never as a crash.
 */

/** What an agent last journaled and shipped (its heartbeat), under `agent.<journal>`. */
export interface AgentHeartbeat {
  name: string;
  epoch: number;
  mode: string;
  pid: number;
  host: string;
  /** Last entry spooled. */
  appended: number;
  /** Last entry JetStream acknowledged. */
  acked: { epoch: number; seq: number };
  time: number;
  /** Changes the agent could not journal because its spool was full. */
  dropped: number;
  /** Where this journal's history begins in the stream (absent from agents older than it). */
  origin?: OriginState;
  /** Entries its spool lost before they were shipped. */
  lost?: LostRange[];
  /** The last process of this journal that died without flushing its ending. */
  unclean?: UncleanEnd;
}

/** What a standby applied and fsynced of a journal, under `applied.<journal>`. */
export interface AppliedRecord {
  e: number;
  s: number;
  /** When the entry was written on the primary (ms). */
  t: number;
  appliedAt: number;
  /** Why the standby's disk failed a write or fsync: it holds nothing past (e, s) for sure. */
  failing?: string;
}

/** A journal closed by a promotion, under `fence.<journal>`, for its old primary to see. */
export interface FenceRecord {
  e: number;
  s: number;
  at: string;
  by: string;
}

/** Objects a standby may hold differently from the primary, and why, under `doubts.<standby>`. */
export interface DoubtsReport {
  standby: string;
  count: number;
  /** The first few, for the status line; `count` says how many in all. */
  objects: { root: string; path: string; why: string; at: number }[];
  time: number;
}

/** What `understudy watch --name NAME` has done, under `watch.<name>`. */
export interface WatchStatus {
  name: string;
  journaled: number;
  polled: number;
  lastPass?: { startedAt: number; finishedAt: number; objects: number; mended: number; examples: string[] };
  /** Mended by all its full passes since it started (absent from watchers older than this field). */
  mendedTotal?: number;
  time: number;
}

/** The last baseline of a name, under `baseline.<name>`. */
export interface BaselineReport {
  state: 'running' | 'done' | 'failed';
  started: number;
  finished?: number;
  roots: string[];
  objects: number;
  bytes: number;
  error?: string;
}

/** The last verify of a name, under `verify.<name>`. */
export interface VerifyReport {
  time: number;
  roots: string[];
  equal: boolean;
  differences: number;
  repaired: number;
  /** Objects that kept changing throughout and so could not be compared. */
  unsettled: number;
}

/** Every kind of record and its shape. */
export interface StateRecords {
  agent: AgentHeartbeat;
  applied: AppliedRecord;
  fence: FenceRecord;
  doubts: DoubtsReport;
  watch: WatchStatus;
  baseline: BaselineReport;
  verify: VerifyReport;
}

export type StateKind = keyof StateRecords;

type Obj = Record<string, unknown>;
const num = (v: Obj, ...keys: string[]): boolean => keys.every((k) => typeof v[k] === 'number');
const str = (v: Obj, ...keys: string[]): boolean => keys.every((k) => typeof v[k] === 'string');

/** The fields each kind's readers rely on; a record without them is not one. */
const CHECKS: { [K in StateKind]: (v: Obj) => boolean } = {
  agent: (v) => num(v, 'epoch', 'appended', 'time') && typeof v.acked === 'object' && v.acked !== null && num(v.acked as Obj, 'epoch', 'seq'),
  applied: (v) => num(v, 'e', 's'),
  fence: (v) => num(v, 'e', 's') && str(v, 'at', 'by'),
  doubts: (v) => str(v, 'standby') && num(v, 'count', 'time') && Array.isArray(v.objects),
  watch: (v) => str(v, 'name') && num(v, 'journaled', 'polled', 'time'),
  baseline: (v) => str(v, 'state') && num(v, 'started', 'objects', 'bytes') && Array.isArray(v.roots),
  verify: (v) => num(v, 'time', 'differences', 'repaired') && typeof v.equal === 'boolean' && Array.isArray(v.roots),
};

/** The key of `kind`'s record for `name` (a journal, a standby, a baseline or verify name). */
export function stateKey(kind: StateKind, name: string): string {
  return `${kind}.${name}`;
}

/** The kind and name a key stands for, when it is a record of this protocol. */
export function parseStateKey(key: string): { kind: StateKind; name: string } | undefined {
  const dot = key.indexOf('.');
  const kind = key.slice(0, dot);
  if (dot < 1 || !(kind in CHECKS)) return undefined;
  return { kind: kind as StateKind, name: key.slice(dot + 1) };
}

/** The record a bucket entry holds, or undefined when it was deleted or is not a record of `kind`. */
export function parseState<K extends StateKind>(kind: K, e: KvEntry | null | undefined): StateRecords[K] | undefined {
  if (e === null || e === undefined || e.operation !== 'PUT') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(e.string());
  } catch {
    return undefined;
  }
  return typeof v === 'object' && v !== null && CHECKS[kind](v as Obj) ? (v as StateRecords[K]) : undefined;
}

/** Reads `kind.name`; undefined when absent, deleted, malformed or unreadable (the bucket is for reporting). */
export async function readState<K extends StateKind>(kv: KV, kind: K, name: string): Promise<StateRecords[K] | undefined> {
  return parseState(kind, await kv.get(stateKey(kind, name)).catch(() => null));
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
