/**
 * Standbys as replication slots, the logic alone: from every standby's committed record and the
 * stream's extent, which standbys are past their limits (lost), how far the stream may be
 * purged for each journal, and how far each agent may trim its spool. Nothing here does I/O;
 * replayer/slots/slots.ts reads the inputs and carries the plan out.
 */
import { comparePosition } from '../../lib/entry';
import { DEFAULTS } from '../../lib/settings';
import type { StandbyRecord } from '../../lib/state-bucket';
import { formatDuration, formatSize } from '../../lib/units';

/** One registered standby as the plan sees it. */
export interface SlotView {
  /** Its key in the state bucket (`standby.<key>`): its name, or name.journal. */
  key: string;
  record: StandbyRecord;
  /** Marked lost already: it holds nothing back. */
  lost: boolean;
  /** How old (ms) the oldest entry it has not applied is, when known (undefined: none, or not known). */
  oldestUnappliedMs?: number;
}

/** The stream's extent, as its info says. */
export interface StreamView {
  firstSeq: number;
  lastSeq: number;
  bytes: number;
  /** Its max_bytes (0 or less: no limit). */
  maxBytes: number;
  /** Journals that have messages in it. */
  journals: string[];
  /** When it was created: a standby's position in an earlier stream of the name covers nothing of this one. */
  created: string;
}

/** What to do this round. */
export interface Plan {
  /** Standbys past a limit: to be marked lost, with the reason in words. */
  lose: { key: string; reason: string }[];
  /** Per journal: purge its messages below this stream sequence (JetStream's purge `seq`, exclusive). */
  purgeBelow: Map<string, number>;
  /** Per journal: its agent may trim its spool up to this entry. */
  spool: Map<string, { e: number; s: number }>;
}

/**
 * The stream position a standby's record vouches for in this stream: none when it counted in
 * an earlier one; and never below the stream's first message, since what was purged is not held
 * by anyone (a standby that joins a trimmed stream holds it back from where it begins).
 */
export function committedIn(r: StandbyRecord, s: Pick<StreamView, 'created' | 'firstSeq'>): number {
  const seq = r.streamCreated === undefined || r.streamCreated === s.created ? r.streamSeq : 0;
  return Math.max(seq, s.firstSeq - 1);
}

/**
 * About how many bytes of the stream lie after `seq`: the share of the stream's sequence range
 * after it, times its bytes (the stream keeps no bytes per range; entries of one service are of
 * like sizes, and the slowest standby's share is the whole stream, which is exact).
 */
export function heldBytes(seq: number, s: Pick<StreamView, 'firstSeq' | 'lastSeq' | 'bytes'>): number {
  if (seq >= s.lastSeq || s.lastSeq < s.firstSeq) return 0;
  const range = s.lastSeq - s.firstSeq + 1;
  const after = s.lastSeq - Math.max(seq, s.firstSeq - 1);
  return Math.round((s.bytes * after) / range);
}

/** A standby's limits: its own --max-standby-lag, else the defaults (a share of the stream's max_bytes, a week). */
export function limitsOf(r: StandbyRecord, maxBytes: number): { bytes: number; ms: number } {
  const byDefault = maxBytes > 0 ? Math.floor((maxBytes * DEFAULTS.slots.maxLagBytesPct) / 100) : Infinity;
  return { bytes: r.maxLag?.bytes ?? byDefault, ms: r.maxLag?.ms ?? DEFAULTS.slots.maxLagMs };
}

/** Why `v` is past a limit now, in words, or undefined. */
export function pastLimit(v: SlotView, s: StreamView): string | undefined {
  const limits = limitsOf(v.record, s.maxBytes);
  const held = heldBytes(committedIn(v.record, s), s);
  if (held > limits.bytes) return `it held back about ${formatSize(held)} of the stream (its limit: ${formatSize(limits.bytes)})`;
  const age = v.oldestUnappliedMs;
  if (age !== undefined && age > limits.ms) return `the oldest entry it had not applied was ${formatDuration(age)} old (its limit: ${formatDuration(limits.ms)})`;
  return undefined;
}

/** Bytes of the newest entries the stream keeps: the largest --keep-stream of all standbys, else the default share of max_bytes. */
export function keepOf(slots: SlotView[], maxBytes: number): number {
  const byDefault = maxBytes > 0 ? Math.floor((maxBytes * DEFAULTS.slots.keepBytesPct) / 100) : 0;
  const given = slots.map((v) => v.record.keepBytes).filter((k): k is number => k !== undefined);
  return given.length > 0 ? Math.max(...given) : byDefault;
}

/** The first stream sequence of the newest `keep` bytes (about, as heldBytes): nothing from it on is purged. */
export function keptFrom(keep: number, s: Pick<StreamView, 'firstSeq' | 'lastSeq' | 'bytes'>): number {
  if (s.lastSeq < s.firstSeq || s.bytes <= keep) return s.firstSeq;
  const range = s.lastSeq - s.firstSeq + 1;
  return Math.max(s.firstSeq, s.lastSeq - Math.floor((keep * range) / s.bytes) + 1);
}

/** Whether standby record `r` applies journal `j`. */
function covers(r: StandbyRecord, j: string): boolean {
  return r.journal === undefined || r.journal === j;
}

/**
 * The round's plan (`confirm`: whether a standby past its limit is lost now, or given more
 * time; every one is, by default). The stream and the spools keep what the slowest standby that still counts
 * (not lost, not being lost now) lacks. A journal only lost standbys apply is kept from where
 * the furthest of them is (they go on reading it; nothing they applied need be kept); a
 * journal no standby applies is not touched. The newest `keep` bytes stay in the stream
 * whatever was committed; the spools need not keep them (the stream does).
 */
export function plan(slots: SlotView[], s: StreamView, confirm: (key: string) => boolean = () => true): Plan {
  const lose: Plan['lose'] = [];
  for (const v of slots) {
    if (v.lost) continue;
    const why = pastLimit(v, s);
    if (why !== undefined && confirm(v.key)) lose.push({ key: v.key, reason: why });
  }
  const losing = new Set(lose.map((l) => l.key));
  const kept = keptFrom(keepOf(slots, s.maxBytes), s);
  const purgeBelow = new Map<string, number>();
  const spool = new Map<string, { e: number; s: number }>();
  for (const j of s.journals) {
    const applying = slots.filter((v) => covers(v.record, j));
    if (applying.length === 0) continue;
    const counted = applying.filter((v) => !v.lost && !losing.has(v.key));
    const by = counted.length > 0 ? counted : applying;
    const pick = counted.length > 0 ? Math.min : Math.max;
    purgeBelow.set(j, Math.min(kept, pick(...by.map((v) => committedIn(v.record, s))) + 1));
    const positions = by.map((v) => v.record.journals[j] ?? { e: 0, s: 0 });
    const sorted = positions.sort(comparePosition);
    spool.set(j, counted.length > 0 ? sorted[0] : sorted[sorted.length - 1]);
  }
  return { lose, purgeBelow, spool };
}
