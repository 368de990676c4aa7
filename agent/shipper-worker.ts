/**
 * The shipper: a worker thread that tails the spool and publishes each entry to
 * JetStream with Nats-Msg-Id = name.epoch.seq, in order. It never touches the
 * application's thread; the application only waits on it at exit (or in sync mode).
 *
 * This file is the wiring: the parts live in agent/ship/ (the ship loop, the acked position,
 * the resend service, the state reporter, stream adoption, spool fsync, the rebase service, the checkpoint service), and the transport
 * behind lib/transport/journal-transport.ts.
 */
import { workerData } from 'node:worker_threads';
import { formatBytes } from '../lib/nats';
import { retry } from '../lib/retry';
import { DEFAULTS } from '../lib/settings';
import { loadSigner } from '../lib/signing';
import { JetStreamTransport } from '../lib/transport/jetstream';
import { warnOnce } from './log';
import { MessageMaker } from './ship/messages';
import { ResendService } from './ship/resend-service';
import { ShipLoop, shipPace } from './ship/ship-loop';
import { ShippingJournal, type ShipperData } from './ship/shipping-journal';
import { syncSpoolPeriodically } from './ship/spool-fsync';
import { StateReporter } from './ship/state-reporter';
import { RebaseService } from './ship/rebase-service';
import { childEnv, spawnRunner } from './ship/rebase-child';
import { StreamAdoption } from './ship/stream-adoption';
import { CheckpointService } from './ship/checkpoint-service';

const data = workerData as ShipperData;
const journal = ShippingJournal.open(data);
// Signing happens here, off the application's thread: Ed25519 costs tens of microseconds an entry.
const messages = new MessageMaker(data.name, data.signingKey === undefined ? undefined : loadSigner(data.signingKey));

/** Tries `fn` until it succeeds, saying once what it waits for: shipping outlives any outage. */
function retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
  return retry(fn, { say: (err) => warnOnce(`retry:${what}`, `journal "${data.name}" cannot ${what} yet (${err.message}); retrying`), firstWaitMs: DEFAULTS.ship.retryFirstMs, maxWaitMs: DEFAULTS.ship.retryMaxMs });
}

/** Said once when the server had no room for a stream of the default size. */
function streamSmaller(bytes: number): void {
  warnOnce('stream-size', `stream ${data.stream} was created with max_bytes ${formatBytes(bytes)}, not ${formatBytes(DEFAULTS.streamMaxBytes)}: the server's JetStream storage is smaller; the standbys trim it below what every one of them committed, and should it fill, it refuses entries and they stay spooled`);
}

async function main(): Promise<void> {
  if (typeof data.spoolFsync === 'number') syncSpoolPeriodically(journal, data.spoolFsync);
  // Keep trying: a server that is down or refuses our credentials now may accept them later.
  const transport = await retrying('connect to NATS', () => JetStreamTransport.connect({ nats: data.nats, stream: data.stream, name: data.name, onStreamSmaller: streamSmaller }));
  const created = await retrying('create the stream', () => transport.ensureStream());
  const reporter = new StateReporter(journal);
  // Only strong mode waits on the standby's applied position: the others need no subscription (nor its permission).
  if (data.mode === 'strong') void reporter.followNotices(transport.appliedNotices());
  // The state bucket is for reporting; shipping never waits for it.
  const rebases = data.rebaseRoots === undefined ? undefined
    : new RebaseService({ journal: data.name, roots: data.rebaseRoots, run: spawnRunner(childEnv(process.env, data.nats, data.stream)) });
  void retrying('open the state bucket', () => transport.openState()).then((store) => {
    reporter.start(store);
    rebases?.start(store);
  });
  new ResendService(journal, transport, messages).serve();
  new CheckpointService(journal, data.control).serve(transport);
  const loop = new ShipLoop({ journal, transport, messages, reporter, adoption: new StreamAdoption(journal, transport, reporter) }, shipPace(data.mode));
  loop.adopt(created);
  await loop.run();
}

main().catch((err: Error) => warnOnce('shipper', `shipper of journal "${data.name}" stopped: ${err.message}; entries stay spooled`));
