import * as fs from 'node:fs';
import {
  connect,
  errors,
  credsAuthenticator,
  nkeyAuthenticator,
  tokenAuthenticator,
  usernamePasswordAuthenticator,
  type Authenticator,
  type NatsConnection,
  type NodeConnectionOptions,
} from '@nats-io/transport-node';
import { DiscardPolicy, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { DEFAULTS, type NatsSettings } from './settings';
import { TransportError } from './errors';
import { journalPrefix, stateBucket } from './subjects';

/** Connection options for a NATS client with the configured authentication and TLS. */
export function connectionOptions(s: NatsSettings, clientName: string): NodeConnectionOptions {
  const authenticator: Authenticator[] = [];
  const read = (file: string, what: string): Uint8Array => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new TransportError(`cannot read ${what} file ${file}`, { cause: err });
    }
  };
  if (s.creds !== undefined) authenticator.push(credsAuthenticator(read(s.creds, 'UNDERSTUDY_NATS_CREDS')));
  // A seed file written by an editor or `echo` ends in a newline, which is not part of the seed.
  if (s.nkey !== undefined) authenticator.push(nkeyAuthenticator(new TextEncoder().encode(Buffer.from(read(s.nkey, 'UNDERSTUDY_NATS_NKEY')).toString('utf8').trim())));
  if (s.token !== undefined) authenticator.push(tokenAuthenticator(s.token));
  if (s.user !== undefined && s.pass !== undefined) authenticator.push(usernamePasswordAuthenticator(s.user, s.pass));
  return {
    servers: s.url.split(',').map((u) => u.trim()),
    name: clientName,
    authenticator: authenticator.length > 0 ? authenticator : undefined,
    tls: s.ca !== undefined ? { caFile: s.ca } : undefined,
    maxReconnectAttempts: -1,
    reconnectTimeWait: DEFAULTS.nats.reconnectWaitMs,
  };
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/**
 * Whether a failed connect means "no server there now" (it may come back), as opposed to a
 * server that refused us (credentials, TLS trust), which waiting does not mend.
 */
export function isUnreachable(err: unknown): boolean {
  const e = err instanceof TransportError ? (err as { cause?: unknown }).cause : err;
  if (e instanceof errors.TimeoutError) return true;
  const code = (e as { cause?: { code?: string } } | undefined)?.cause?.code;
  return e instanceof errors.ConnectionError && code !== undefined && UNREACHABLE.has(code);
}

/**
 * The bucket's keys matching `filter`, or what was listed when `timeoutMs` ran out: listing
 * runs an ordered consumer, which was seen to stall for minutes on a busy server.
 */
export async function listKeys(kv: KV, filter: string, timeoutMs: number = DEFAULTS.nats.listKeysMs): Promise<string[]> {
  // A set: a key updated while they are listed (a heartbeat) can come twice.
  const keys = new Set<string>();
  const listing = (async () => {
    for await (const k of await kv.keys(filter)) keys.add(k);
  })().catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([listing, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
  return [...keys];
}

/**
 * Every key the state bucket of `stream` holds, read from its stream's subjects at one moment.
 * kv.keys() follows the bucket until nothing is pending, which under steady heartbeats can be
 * never (status hung for minutes beside a busy watcher); this is one request.
 */
export async function stateKeys(jsm: JetStreamManager, stream: string): Promise<string[]> {
  const prefix = `$KV.${stateBucket(stream)}.`;
  const info = await jsm.streams.info(`KV_${stateBucket(stream)}`, { subjects_filter: `${prefix}>` });
  return Object.keys(info.state.subjects ?? {}).map((s) => s.slice(prefix.length)).sort();
}

/** Connects to NATS; the error names the servers tried. */
export async function connectNats(s: NatsSettings, clientName: string, opts: Partial<NodeConnectionOptions> = {}): Promise<NatsConnection> {
  try {
    return await connect({ ...connectionOptions(s, clientName), ...opts });
  } catch (err) {
    throw new TransportError(`cannot connect to NATS at ${s.url}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Creates the journal stream if it is missing. File storage and `discard: new`
 * so that a full stream refuses publishes (the agent keeps them spooled)
 * instead of silently evicting entries the standby has not applied.
 * Its size is DEFAULTS.streamMaxBytes, or, on a server whose JetStream storage is
 * smaller (nats-server reserves a stream's max_bytes; by default it may use 75 % of its
 * disk), the largest quarter of the one before it accepts (2 GiB, 512 MiB, 128 MiB):
 * quarters, so that what is left keeps room for the state bucket, which a stream taking
 * all of it would shut out. `onSmaller` hears the size taken, for the caller to say once.
 */
export async function ensureStream(jsm: JetStreamManager, stream: string, replicas: number = DEFAULTS.streamReplicas, onSmaller?: (bytes: number) => void): Promise<StreamInfo> {
  try {
    const info = await jsm.streams.info(stream);
    if (info.config.discard !== DiscardPolicy.New) {
      throw new TransportError(`stream ${stream} exists with discard: ${info.config.discard}; understudy needs discard: new so entries are never evicted unseen`);
    }
    return info;
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.status !== 404) throw err;
  }
  for (let maxBytes = DEFAULTS.streamMaxBytes; ; maxBytes /= 4) {
    try {
      const info = await jsm.streams.add({
        name: stream,
        subjects: [`${journalPrefix(stream)}.*`],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.New,
        max_bytes: maxBytes,
        num_replicas: replicas,
        duplicate_window: DEFAULTS.duplicateWindowMs * 1_000_000,
      });
      if (maxBytes < DEFAULTS.streamMaxBytes) onSmaller?.(maxBytes);
      return info;
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === INSUFFICIENT_STORAGE && maxBytes / 4 >= DEFAULTS.nats.minStreamBytes) continue;
      // Two processes may race to create it; the loser reads what the winner made.
      if (err instanceof JetStreamApiError) {
        const info = await jsm.streams.info(stream).catch(() => undefined);
        if (info !== undefined) return info;
      }
      const tried = maxBytes < DEFAULTS.streamMaxBytes ? ` (tried max_bytes from ${formatBytes(DEFAULTS.streamMaxBytes)} down to ${formatBytes(maxBytes)})` : '';
      throw new TransportError(`cannot create stream ${stream}: ${(err as Error).message}${tried}`, { cause: err });
    }
  }
}

/** nats-server's JSStorageResourcesExceededErr: the stream's max_bytes does not fit in what it may store. */
const INSUFFICIENT_STORAGE = 10047;

/** 8 GiB, 512 MiB: a stream size as an operator reads it. */
export function formatBytes(n: number): string {
  return n >= 1024 ** 3 ? `${n / 1024 ** 3} GiB` : `${n / 1024 ** 2} MiB`;
}

/** Opens (creating if needed) the bucket where positions are left for `status`. */
export async function openStateKv(nc: NatsConnection, stream: string, replicas: number = DEFAULTS.streamReplicas): Promise<KV> {
  return new Kvm(nc).create(stateBucket(stream), { history: 1, storage: StorageType.File, replicas });
}
