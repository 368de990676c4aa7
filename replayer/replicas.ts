import * as fs from 'node:fs';
import * as path from 'node:path';
import { deserialize } from 'node:v8';
import { checkObjectName } from '../lib/objects';
import { ApplyError } from '../lib/errors';

/**
 * The standby's replicas of configuration stores and queues, one JSON file each under
 * the replayer's state directory: `config/<store>.json`, `queues/<name>.json`. Each
 * records, per journal, the last entry it reflects (`through`), so that an entry
 * applied again after a crash is recognised and passed over.
 */

/** Last entry of each journal a replica reflects. */
export type Through = Record<string, { e: number; s: number }>;

export interface ConfigReplica {
  store: string;
  through: Through;
  /** The store's keys and values, as the primary last had them. */
  values: unknown;
}

/** A job as the replica keeps it: its payload as v8.serialize bytes, in base64. */
export interface StoredJob {
  id: string;
  /** The journal (process) that enqueued it: ids are unique within a journal only. */
  journal: string;
  /** When it was enqueued on the primary (ms since 1970). */
  t: number;
  captured: boolean;
  payload?: string;
  started?: true;
  label?: string;
}

export interface QueueReplica {
  queue: string;
  through: Through;
  /** Jobs enqueued and not completed nor failed, in the order they would run. */
  pending: StoredJob[];
  completed: number;
  failed: number;
}

/** A job the primary had not finished, for the standby application to run again. */
export interface PendingJob {
  id: string;
  /** The journal (process) that enqueued it. */
  journal: string;
  queue: string;
  enqueuedAt: Date;
  /** False when the payload could not be structured-cloned on the primary: only the job's existence is known. */
  captured: boolean;
  payload: unknown;
  /** The job had started on the primary (libraries that say so: better-queue). */
  started: boolean;
  /** The task's name when the task was code (p-queue). */
  label?: string;
}

export const CONFIG_DIR = 'config';
export const QUEUE_DIR = 'queues';
/** The directories of replicas under the state directory. */
export type ReplicaDir = typeof CONFIG_DIR | typeof QUEUE_DIR;

/** The replica of a store nothing was replicated to yet. */
export function emptyConfig(store: string): ConfigReplica {
  return { store, through: {}, values: {} };
}

/** The replica of a queue nothing was replicated to yet. */
export function emptyQueue(queue: string): QueueReplica {
  return { queue, through: {}, pending: [], completed: 0, failed: 0 };
}

/** The file of store or queue `name` under `stateDir`; the name is checked so it cannot leave `dir`. */
export function replicaFile(stateDir: string, dir: ReplicaDir, name: string): string {
  return path.join(stateDir, dir, `${checkObjectName(name, dir === CONFIG_DIR ? 'configuration store name' : 'queue name')}.json`);
}

/** Reads a replica file; undefined when there is none yet. */
export function readReplicaFile<T>(file: string): T | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new ApplyError(`replica ${file} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** Names of the replicas of one kind under `stateDir`. */
export function listReplicas(stateDir: string, dir: ReplicaDir): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(path.join(stateDir, dir));
  } catch {
    return [];
  }
  return names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).map((n) => n.slice(0, -'.json'.length)).sort();
}

/** The configuration of `store` as last committed on the standby ({} when nothing was replicated). */
export function loadConfig(stateDir: string, store: string): unknown {
  return readReplicaFile<ConfigReplica>(replicaFile(stateDir, CONFIG_DIR, store))?.values ?? {};
}

/** The queue replica of `name` as last committed on the standby. */
export function loadQueue(stateDir: string, name: string): QueueReplica {
  return readReplicaFile<QueueReplica>(replicaFile(stateDir, QUEUE_DIR, name)) ?? emptyQueue(name);
}

/** The jobs of `name` enqueued and not finished, with their payloads restored. */
export function loadPendingJobs(stateDir: string, name: string): PendingJob[] {
  return loadQueue(stateDir, name).pending.map((j) => ({
    id: j.id,
    journal: j.journal,
    queue: name,
    enqueuedAt: new Date(j.t),
    captured: j.captured,
    payload: j.captured && j.payload !== undefined ? deserialize(Buffer.from(j.payload, 'base64')) : undefined,
    started: j.started === true,
    ...(j.label === undefined ? {} : { label: j.label }),
  }));
}
