import { createInbox, type NatsConnection } from '@nats-io/transport-node';
import type { Digest, HashName } from './digest';
import { TransportError } from './errors';
import { DEFAULTS } from './settings';

/** What `understudy verify` asks a running replayer: every object of a root, or some paths of it. */
export type VerifyRequest =
  | { kind: 'manifest'; root: string; hash: HashName }
  | { kind: 'digest'; root: string; hash: HashName; paths: string[] };

/**
 * What `understudy verify` tells the replayer once it found `roots` equal, comparing from
 * `since` on: what the standby doubted before then is settled, except the `unsettled` paths
 * (root/path), which kept changing and were not compared.
 */
export interface SettledNotice { kind: 'settled'; roots: string[]; since: number; unsettled: string[] }

/** One reply message; the last one has `done` and the replayer's applied positions when it answered. */
export interface VerifyReply {
  digests?: Digest[];
  done?: boolean;
  applied?: Record<string, { e: number; s: number }>;
  error?: string;
}

/**
 * Sends a verify request and collects the streamed answer. `idleMs` bounds the wait
 * for each next message (a large tree takes long in all, but never long between two).
 */
export async function askReplayer(nc: NatsConnection, subject: string, req: VerifyRequest, idleMs: number = DEFAULTS.verify.replyIdleMs):
    Promise<{ digests: Digest[]; applied: Record<string, { e: number; s: number }> }> {
  const inbox = createInbox();
  const sub = nc.subscribe(inbox);
  const digests: Digest[] = [];
  try {
    nc.publish(subject, JSON.stringify(req), { reply: inbox });
    const it = sub[Symbol.asyncIterator]();
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const idle = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TransportError(noReplayer(subject, `within ${idleMs / 1000} s`))), idleMs);
      });
      const next = await Promise.race([it.next(), idle]).finally(() => clearTimeout(timer));
      if (next.done === true) throw new TransportError('the connection closed while the replayer answered');
      // The server's "no responders" status: an empty message with code 503.
      if (next.value.data.length === 0) throw new TransportError(noReplayer(subject, 'now'));
      const reply = JSON.parse(next.value.string()) as VerifyReply;
      if (reply.error !== undefined) throw new TransportError(`the replayer could not answer: ${reply.error}`);
      if (reply.digests !== undefined) digests.push(...reply.digests);
      if (reply.done === true) return { digests, applied: reply.applied ?? {} };
    }
  } finally {
    sub.unsubscribe();
  }
}

function noReplayer(subject: string, when: string): string {
  return `no replayer answered on ${subject} ${when}; is "understudy replay" running for this stream?`;
}
