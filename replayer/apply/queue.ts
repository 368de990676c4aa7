import type { EntryHeader } from '../../lib/entry';
import { BadEntryError } from '../../lib/errors';
import { QUEUE_DIR, emptyQueue, type QueueReplica, type StoredJob } from '../replicas';
import type { ReplicaKind } from './object-store';

/** A queue replica in memory: its pending jobs by (journal, id), in the order they would run. */
interface Queue { r: QueueReplica; jobs: Map<string, StoredJob> }

/** Queues: a `job` entry is one event in a job's life, kept in `queues/<name>.json` under --state. */
export const QUEUE_REPLICAS: ReplicaKind<Queue, QueueReplica> = {
  name: 'queue',
  op: 'job',
  dir: QUEUE_DIR,
  load(name, stored) {
    const r = stored ?? emptyQueue(name);
    return { r, jobs: new Map(r.pending.map((j) => [jobKey(j.journal, j.id), j])) };
  },
  through: (q) => q.r.through,
  apply(q, h, data) {
    if (h.op !== 'job') throw new BadEntryError(`${h.op} entry is not a job entry`);
    applyJob(q.r, q.jobs, h, data);
  },
  stored: (q) => ({ ...q.r, pending: [...q.jobs.values()] }),
};

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
