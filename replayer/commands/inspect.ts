import { decodeEntry } from '../../lib/codec';
import { splitMessage } from '../../lib/batch';
import type { EntryHeader } from '../../lib/entry';
import { SettingsError } from '../../lib/errors';
import { connectNats } from '../../lib/nats';
import { readStream } from '../journal-reader';
import { common, parse } from '../../lib/cli-options';

export const usage = `understudy inspect [--nats URL] [--stream S] [--name NAME] [--from STREAM_SEQ] [--limit N] [--json]

Prints the journal entries the stream holds, oldest first (like mysqlbinlog).
--json prints one JSON object per line, with the data as base64 when --data is given.`;

/** `understudy inspect`. */
export async function inspect(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parse(argv, {
    json: { type: 'boolean' }, from: { type: 'string' }, limit: { type: 'string' }, data: { type: 'boolean' },
  });
  if (values.help === true) {
    console.log(usage);
    return 0;
  }
  const o = common(values, env, false);
  const fromSeq = count(values.from, '--from');
  const limit = count(values.limit, '--limit');
  const nc = await connectNats(o.nats, 'understudy-inspect');
  let bad = 0;
  try {
    for await (const m of readStream(nc, o.stream, { name: o.name, fromSeq, limit })) {
      let line: string;
      try {
        line = splitMessage(m.data).map((raw) => {
          const { header, data } = decodeEntry(raw);
          return values.json === true
            ? JSON.stringify({ stream_seq: m.seq, ...header, bytes: data.length, ...(values.data === true ? { data: data.toString('base64') } : {}) })
            : describe(m.seq, header, data.length);
        }).join('\n');
      } catch (err) {
        bad++;
        line = values.json === true
          ? JSON.stringify({ stream_seq: m.seq, subject: m.subject, error: (err as Error).message })
          : `#${m.seq} ${m.subject} UNREADABLE: ${(err as Error).message}`;
      }
      console.log(line);
    }
  } finally {
    await nc.close();
  }
  return bad > 0 ? 1 : 0;
}

function describe(streamSeq: number, h: EntryHeader, bytes: number): string {
  const when = new Date(h.t).toISOString();
  let detail = '';
  switch (h.op) {
    case 'put': case 'mkdir': case 'chmod': detail = `mode=${h.mode.toString(8).padStart(4, '0')}`; break;
    case 'append': case 'pwrite': detail = `at=${h.at}`; break;
    case 'truncate': detail = `size=${h.size}`; break;
    case 'rename': detail = `-> ${h.toRoot}/${h.to}`; break;
    case 'symlink': detail = `-> ${JSON.stringify(h.target)}`; break;
    case 'link': detail = `= ${h.fromRoot}/${h.from}`; break;
    case 'rm': break;
    case 'config': detail = `${h.key.join('.') || '(whole store)'}${h.del === true ? ' deleted' : ''}`; break;
    case 'job': detail = `${h.id} ${h.ev}${h.captured === false ? ' (payload not captured)' : ''}${h.label === undefined ? '' : ` ${h.label}`}`; break;
    // A database's change: from where it builds on to where it leaves the database (generation.position).
    case 'sqlite': detail = h.kind === 'image' ? `image at ${h.w}.${h.k}` : `${h.kind} ${h.bw}.${h.bk} -> ${h.w}.${h.k}`; break;
  }
  const chunk = h.c === undefined ? '' : ` chunk ${h.c.i + 1}/${h.c.n} @${h.c.off}`;
  // Configuration and jobs have no root: the store or queue name alone says where they go.
  const where = h.op === 'config' || h.op === 'job' ? h.p : `${h.r}/${h.p}`;
  return `#${streamSeq} ${h.j} ${h.e}.${h.s} ${when} ${h.op} ${where} ${detail}${bytes > 0 ? ` [${bytes} bytes]` : ''}${chunk}`.replace(/ +/g, ' ').trim();
}

function count(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new SettingsError(`${flag} ${v} is not a positive whole number`);
  return n;
}
