import { Replayer } from '../replayer';
import { common, parse } from './options';

export const usage = `understudy replay --root name=/abs/dir … [--nats URL] [--name NAME] [--stream S] [--state DIR] [--drain]

Applies journal entries from the stream to the standby's roots, in order, exactly once.
--drain applies everything the stream holds now and exits 0 (non-zero on any error);
without it, runs until SIGINT or SIGTERM and stops cleanly.`;

/** `understudy replay`. */
export async function replay(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parse(argv, { drain: { type: 'boolean' } });
  if (values.help === true) {
    console.log(usage);
    return 0;
  }
  const o = common(values, env, true);
  const log = (line: string): void => console.error(`understudy replay: ${line}`);
  const replayer = new Replayer({ ...o, drain: values.drain === true, log });
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    if (values.drain !== true) log(`following stream ${o.stream}${o.name ? ` (journal ${o.name})` : ''} into ${o.roots.map((r) => `${r.name}=${r.dir}`).join(', ')}`);
    const s = await replayer.run(ac.signal);
    log(`applied ${s.applied} entries (${s.duplicates} duplicates skipped), stream position ${s.streamSeq}`);
    return 0;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
