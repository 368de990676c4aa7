import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, openStateKv } from '../lib/nats';
import { agentSettings, DEFAULTS, type AgentSettings, type NatsSettings } from '../lib/settings';
import type { Root } from '../lib/roots';
import { loadSigner } from '../lib/signing';
import { Journal } from './journal';
import { Shipper } from './shipper';

/** A journal of the primary's own, outside any application: what baseline, watch and verify --repair write to. */
export interface Session {
  settings: AgentSettings;
  journal: Journal;
  shipper: Shipper;
  /** Resolves once JetStream has every entry journaled so far; false when `timeoutMs` passed first. */
  shipped(timeoutMs: number, progress?: (left: number) => void): Promise<boolean>;
  close(): void;
}

/** What a command gives to open a session: its flags, already checked. */
export interface SessionOptions {
  nats: NatsSettings;
  stream: string;
  roots: Root[];
  name: string;
}

/**
 * Opens journal `name` with its spool and shipper, as the agent does, from the
 * command's flags and the UNDERSTUDY_* variables (spool directory, signing key, exclusions).
 */
export function openSession(o: SessionOptions, env: NodeJS.ProcessEnv): Session {
  const settings: AgentSettings = {
    ...agentSettings({ ...env, UNDERSTUDY_ROOTS: o.roots.map((r) => `${r.name}=${r.dir}`).join(','), UNDERSTUDY_NAME: o.name }, undefined),
    nats: o.nats,
    stream: o.stream,
    mode: 'async',
  };
  if (settings.signingKey !== undefined) loadSigner(settings.signingKey);
  // No size limit: a command waits for its entries to ship instead of dropping them.
  const journal = new Journal(settings.spoolDir, settings.name, { fsyncAlways: settings.spoolFsync === 'always' });
  const opened = journal.open();
  const shipper = new Shipper(settings, journal.dir, journal.epoch);
  shipper.start(opened.lastSeq);
  shipper.attach(journal);
  return {
    settings, journal, shipper,
    async shipped(timeoutMs, progress) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { appended, acked } = shipper.positions();
        shipper.hurry();
        if (acked >= appended) {
          // The final heartbeat tells `status` and the standby where this journal ends.
          shipper.waitReported(DEFAULTS.session.reportWaitMs);
          return true;
        }
        progress?.(appended - acked);
        if (Date.now() > deadline) return false;
        await new Promise((r) => setTimeout(r, DEFAULTS.session.shipPollMs));
      }
    },
    close() {
      journal.close();
    },
  };
}

/** Connects to NATS and opens the state bucket, for commands that read or leave results there. */
export async function openState(nats: NatsSettings, stream: string, clientName: string): Promise<{ nc: NatsConnection; kv: KV }> {
  const nc = await connectNats(nats, clientName);
  try {
    return { nc, kv: await openStateKv(nc, stream, nats.replicas) };
  } catch (err) {
    await nc.close();
    throw err;
  }
}
