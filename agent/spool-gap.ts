/**
 * What the shipper does when its spool begins after the entry it must ship next (a spool
 * trimmed past the acked position an earlier process saved, or segments that went missing):
 * it never stops for good. It goes on from the oldest entry the spool holds; the entries in
 * between are lost only if neither the standby applied them nor the stream holds them, and
 * then that is kept in the spool (lost.json) and reported in every heartbeat, so that
 * `understudy status` says the standby differs, and why, until a baseline mends it.
 */
import { readJson, spoolFiles, type LostRange } from '../lib/spool';
import { replaceJson } from '../lib/durable-file';
import { DEFAULTS } from '../lib/settings';

const KEEP = DEFAULTS.lostRangesKept;

/** What is known elsewhere about the entries the spool no longer holds. */
export interface GapWitnesses {
  /** Last seq the standby reported applied, if it reported any. */
  appliedSeq?: number;
  /** Seq of the stream's last entry of this journal, if it holds any. */
  streamSeq?: number;
}

/**
 * The entries `wanted`..`oldest - 1` that no witness has: none when the standby applied them
 * or the stream holds them (entries are acknowledged in order, so the stream holding a later
 * one holds these).
 */
export function lostBetween(wanted: number, oldest: number, w: GapWitnesses): { from: number; to: number } | undefined {
  const to = oldest - 1;
  const have = Math.max(w.appliedSeq ?? 0, w.streamSeq ?? 0);
  if (have >= to) return undefined;
  return { from: Math.max(wanted, have + 1), to };
}

/** The lost ranges recorded in the spool directory `dir`, oldest first. */
export function readLost(dir: string): LostRange[] {
  try {
    return readJson<LostRange[]>(spoolFiles(dir).lost) ?? [];
  } catch {
    return []; // unreadable: the next record writes it again
  }
}

/** Adds a lost range to the spool's record, durably: it must outlive this process. */
export function recordLost(dir: string, range: LostRange): LostRange[] {
  const all = [...readLost(dir), range].slice(-KEEP);
  replaceJson(spoolFiles(dir).lost, all);
  return all;
}
