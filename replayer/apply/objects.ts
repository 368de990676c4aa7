import * as fs from 'node:fs';
import * as path from 'node:path';
import { comparePosition, OBJECT_OPS, type EntryHeader } from '../../lib/entry';
import { checkConfigKey, checkObjectName } from '../../lib/objects';
import { BadEntryError } from '../../lib/errors';
import { replaceJson, syncDir } from '../../lib/durable-file';
import {
  CONFIG_DIR, QUEUE_DIR, readReplicaFile, replicaFile,
  type ConfigReplica, type QueueReplica, type StoredJob, type Through,
} from '../replicas';

type Kind = typeof CONFIG_DIR | typeof QUEUE_DIR;
type Replica = { kind: typeof CONFIG_DIR; r: ConfigReplica } | { kind: typeof QUEUE_DIR; r: QueueReplica; jobs: Map<string, StoredJob> };

/** One applied entry as the log keeps it between commits. */
interface LogLine { h: EntryHeader; d: string }

/** Where the last applied entry of each journal stands; the replayer's position store. */
export type AppliedPosition = (journal: string) => { e: number; s: number } | undefined;

/**
 * Applies configuration and job entries to replicas under the state directory.
 * A replica is rewritten whole, atomically (temp, fsync, rename, fsync dir), at each
 * commit, not per entry; between commits every applied entry is appended to
 * `objects.log`, because the replayer records its position per entry and a killed
 * replayer must not have advanced past changes that were only in its memory. On start
 * the log is applied again up to the recorded positions (each replica passes over what
 * it already reflects), made durable, and emptied.
 */
export class ObjectApplier {
  private readonly replicas = new Map<string, Replica>();
  private readonly dirty = new Set<string>();
  private readonly logFile: string;
  private logFd: number;
  private logged = false;

  constructor(private readonly stateDir: string, applied: AppliedPosition) {
    for (const d of [CONFIG_DIR, QUEUE_DIR]) fs.mkdirSync(path.join(stateDir, d), { recursive: true, mode: 0o700 });
    this.logFile = path.join(stateDir, 'objects.log');
    const lines = readLog(this.logFile);
    this.logFd = fs.openSync(this.logFile, 'a', 0o600);
    for (const { h, d } of lines) {
      const at = applied(h.j);
      // Entries the position store does not cover will come from the stream again.
      if (at !== undefined && comparePosition(h, at) <= 0) this.applyHeader(h, Buffer.from(d, 'base64'));
    }
    this.logged = lines.length > 0;
    this.syncNow();
  }

  /** True for the entries this applier takes. */
  static handles(h: EntryHeader): boolean {
    return OBJECT_OPS.has(h.op);
  }

  /** Applies one config or job entry; BadEntryError when it is malformed. */
  apply(h: EntryHeader, data: Buffer): void {
    if (this.applyHeader(h, data)) {
      const line: LogLine = { h, d: data.toString('base64') };
      fs.writeSync(this.logFd, `${JSON.stringify(line)}\n`);
      this.logged = true;
    }
  }

  /** Makes every replica changed since the last call durable, then empties the log. */
  async sync(): Promise<void> {
    this.syncNow();
  }

  close(): void {
    if (this.logFd >= 0) fs.closeSync(this.logFd);
    this.logFd = -1;
  }

  private syncNow(): void {
    if (this.dirty.size === 0 && !this.logged) return;
    const dirs = new Set<string>();
    for (const key of this.dirty) {
      const rep = this.replicas.get(key);
      if (rep === undefined) continue;
      const file = this.fileOf(key);
      const body = rep.kind === QUEUE_DIR ? { ...rep.r, pending: [...rep.jobs.values()] } : rep.r;
      // Each directory is fsynced once, after all its replicas were replaced.
      replaceJson(file, body, { syncDir: false });
      dirs.add(path.dirname(file));
    }
    for (const d of dirs) syncDir(d);
    this.dirty.clear();
    // Every line is now in a durable replica; a line that survives a crash is passed over by `through`.
    fs.ftruncateSync(this.logFd, 0);
    this.logged = false;
  }

  /** Applies `h` unless its replica already reflects it; true when it changed something. */
  private applyHeader(h: EntryHeader, data: Buffer): boolean {
    const name = checkObjectName(h.p, h.op === 'config' ? 'configuration store name' : 'queue name');
    const kind: Kind = h.op === 'config' ? CONFIG_DIR : QUEUE_DIR;
    const key = `${kind}/${name}`;
    const rep = this.load(key, kind, name);
    const at = rep.r.through[h.j];
    if (at !== undefined && comparePosition(h, at) <= 0) return false;
    if (h.op === 'config' && rep.kind === CONFIG_DIR) applyConfig(rep.r, checkConfigKey(h.key), h.del === true ? undefined : parseJson(data, h));
    else if (h.op === 'job' && rep.kind === QUEUE_DIR) applyJob(rep.r, rep.jobs, h, data);
    else throw new BadEntryError(`${h.op} entry is not a configuration or job entry`);
    rep.r.through[h.j] = { e: h.e, s: h.s };
    this.dirty.add(key);
    return true;
  }

  private load(key: string, kind: Kind, name: string): Replica {
    let rep = this.replicas.get(key);
    if (rep !== undefined) return rep;
    const file = replicaFile(this.stateDir, kind, name);
    if (kind === CONFIG_DIR) {
      rep = { kind, r: readReplicaFile<ConfigReplica>(file) ?? { store: name, through: {} as Through, values: {} } };
    } else {
      const r = readReplicaFile<QueueReplica>(file) ?? { queue: name, through: {} as Through, pending: [], completed: 0, failed: 0 };
      rep = { kind, r, jobs: new Map(r.pending.map((j) => [jobKey(j.journal, j.id), j])) };
    }
    this.replicas.set(key, rep);
    return rep;
  }

  private fileOf(key: string): string {
    const [kind, name] = key.split('/') as [Kind, string];
    return replicaFile(this.stateDir, kind, name);
  }
}

function parseJson(data: Buffer, h: EntryHeader): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new BadEntryError(`config value of ${h.p} is not JSON: ${(err as Error).message}`);
  }
}

/** Sets (or, for undefined, removes) the value at `key`; intermediate levels that are not objects become objects. */
function applyConfig(r: ConfigReplica, key: string[], value: unknown): void {
  if (key.length === 0) {
    r.values = value === undefined ? {} : value;
    return;
  }
  if (!isRecord(r.values)) r.values = {};
  let node = r.values as Record<string, unknown>;
  for (const seg of key.slice(0, -1)) {
    const next = Object.hasOwn(node, seg) ? node[seg] : undefined;
    if (!isRecord(next)) {
      if (value === undefined) return; // nothing there to remove
      node[seg] = {};
    }
    node = node[seg] as Record<string, unknown>;
  }
  const last = key[key.length - 1];
  if (value === undefined) delete node[last];
  else node[last] = value;
}

/** Job ids are unique within their journal; several processes may feed one queue name. */
function jobKey(journal: string, id: string): string {
  return `${journal}\u0000${id}`;
}

function applyJob(r: QueueReplica, jobs: Map<string, StoredJob>, h: EntryHeader & { op: 'job' }, data: Buffer): void {
  const key = jobKey(h.j, h.id);
  switch (h.ev) {
    case 'enqueued': {
      if (jobs.has(key)) return;
      const job: StoredJob = { id: h.id, journal: h.j, t: h.t, captured: h.captured === true };
      if (job.captured) job.payload = data.toString('base64');
      if (h.label !== undefined) job.label = h.label;
      if (h.front === true) {
        const rest = [...jobs.entries()];
        jobs.clear();
        jobs.set(key, job);
        for (const [k, j] of rest) jobs.set(k, j);
      } else {
        jobs.set(key, job);
      }
      return;
    }
    case 'started': {
      const j = jobs.get(key);
      if (j !== undefined) j.started = true;
      return;
    }
    case 'completed':
    case 'failed':
      if (jobs.delete(key)) {
        if (h.ev === 'completed') r.completed++;
        else r.failed++;
      }
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The log's lines; a torn last line (a kill mid-write) is left out. */
function readLog(file: string): LogLine[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: LogLine[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // only the last line can be torn
    }
  }
  return out;
}
