import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { listKeys } from '../lib/nats';
import { DEFAULTS } from '../lib/settings';
import { readState, type AgentHeartbeat } from '../lib/state-bucket';
import { resendSubject, type ResendReply, type ResendRequest } from '../lib/subjects';

/** The primary's agents as the standby sees them: their heartbeats, and their resend service. */
export interface Agents {
  /** The journals whose agents have reported, by name. */
  names(): Promise<string[]>;
  /** The last heartbeat of journal `name`'s agent, if any. */
  heartbeat(name: string): Promise<AgentHeartbeat | undefined>;
  /** Asks journal `name`'s agent to publish entries again; rejects when it does not answer. */
  resend(name: string, request: ResendRequest): Promise<ResendReply>;
}

/** The agents through the state bucket `kv` and resend requests over `nc`. */
export function natsAgents(nc: NatsConnection, kv: KV, stream: string): Agents {
  return {
    async names() {
      return (await listKeys(kv, 'agent.*')).map((k) => k.slice('agent.'.length));
    },
    heartbeat: (name) => readState(kv, 'agent', name).catch(() => undefined),
    async resend(name, request) {
      const reply = await nc.request(resendSubject(stream, name), JSON.stringify(request), { timeout: DEFAULTS.replay.resendTimeoutMs });
      return JSON.parse(reply.string()) as ResendReply;
    },
  };
}

/** Journals the standby has applied, then those whose agents have reported; only `filter` when given. */
export async function knownJournals(applied: Iterable<string>, agents: Agents, filter: string | undefined): Promise<string[]> {
  const names = new Set(applied);
  for (const n of await agents.names()) names.add(n);
  return [...names].filter((n) => filter === undefined || n === filter);
}
