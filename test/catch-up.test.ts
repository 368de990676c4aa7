import test from 'ava';
import { encodeEntry } from '../lib/codec';
import type { AgentHeartbeat } from '../lib/state-bucket';
import type { ResendReply } from '../lib/subjects';
import type { Agents } from '../replayer/agents';
import { CatchUp } from '../replayer/catch-up';
import { Sequencer, type Sequenced } from '../replayer/order/sequencer';
import { MemorySource } from '../replayer/source/memory';
import type { JournalPos } from '../replayer/state';

const pos = (label: string): { e: number; s: number } => {
  const [e, s] = label.split('.').map(Number);
  return { e, s };
};

/**
 * One standby as catch-up finds it, and what it must do. Positions are `epoch.seq`; `held`
 * are entries waiting behind a gap; `stream` the messages the stream still holds.
 */
interface Case {
  name: string;
  applied?: Record<string, string>;
  held?: Record<string, string[]>;
  stream?: Record<string, string[]>;
  caughtUp: boolean;
  beats?: Record<string, { acked: string; lost?: [number, number]; origin?: { seq: number; epoch: number; otherStream?: boolean } }>;
  reply?: ResendReply | 'silent';
  journal?: string;
  asked: string[];
  skipped?: string[];
  lacking?: string[];
  /** Times the standby is said lost: entries gone from the stream and the spool, for good. */
  lost?: number;
  any: boolean;
  said?: RegExp;
}

const cases: Case[] = [
  { name: 'behind the agent while the stream has more for us is lag: nothing asked', applied: { a: '1.3' }, caughtUp: false, beats: { a: { acked: '1.9' } }, asked: [], any: false },
  { name: 'a gap held: its agent is asked for the missing entries', applied: { a: '1.3' }, held: { a: ['1.6'] }, caughtUp: false, beats: { a: { acked: '1.6' } }, asked: ['a 4..5'], any: true, said: /^journal a: entries 4\.\.5 were missing from the stream; the agent resent 2$/ },
  { name: 'caught up, and the stream\'s last message of the journal reaches what the agent acked: nothing asked', applied: { a: '1.3' }, stream: { a: ['1.9'] }, caughtUp: true, beats: { a: { acked: '1.9' } }, asked: [], any: false },
  { name: 'caught up, and the agent acked more than the stream holds: asked for it', applied: { a: '1.3' }, stream: { a: ['1.5'] }, caughtUp: true, beats: { a: { acked: '1.9' } }, asked: ['a 4..9'], any: true },
  { name: 'a journal never applied, whose acked entries the stream lost: asked from 1', caughtUp: true, beats: { a: { acked: '1.4' } }, asked: ['a 1..4'], any: true },
  { name: 'the agent\'s numbering began again with a new epoch: asked from 1', applied: { a: '1.7' }, caughtUp: true, beats: { a: { acked: '2.3' } }, asked: ['a 1..3'], any: true },
  {
    name: 'entries its agent reported lost from its spool are passed, not asked for, and the journal is in doubt',
    applied: { a: '1.3' }, held: { a: ['1.8'] }, caughtUp: false, beats: { a: { acked: '1.8', lost: [4, 6] } },
    asked: [], skipped: ['a 1.6'], lacking: ['a'], lost: 1, any: true, said: /^journal a: entries 4\.\.6 are gone: neither the stream nor its agent's spool \(which begins at 7\) holds them/,
  },
  { name: 'an agent whose spool begins later: the journal goes on from its oldest entry, and is in doubt', applied: { a: '1.3' }, held: { a: ['1.8'] }, caughtUp: false, beats: { a: { acked: '1.8' } }, reply: { resent: 3, oldest: { e: 1, s: 5 } }, asked: ['a 4..7'], skipped: ['a 1.4'], lacking: ['a'], lost: 1, any: true },
  {
    name: 'entries that went to an earlier stream: the journal goes on where its history here begins, and is in doubt',
    held: { a: ['1.10'] }, caughtUp: false, beats: { a: { acked: '1.10', origin: { seq: 10, epoch: 1 } } },
    asked: [], skipped: ['a 1.9'], lacking: ['a'], any: true, said: /^journal a's entries 1\.\.9 went to an earlier stream UNDERSTUDY/,
  },
  { name: 'an origin in a stream made since is not believed: the agent is asked', held: { a: ['1.10'] }, caughtUp: false, beats: { a: { acked: '1.10', origin: { seq: 10, epoch: 1, otherStream: true } } }, asked: ['a 1..9'], any: true },
  { name: 'an agent that does not answer is said, and nothing is passed', applied: { a: '1.3' }, held: { a: ['1.6'] }, caughtUp: false, reply: 'silent', asked: ['a 4..5'], any: false, said: /^journal a: entries 4\.\.5 are missing from the stream and its agent does not answer \(no responders\)$/ },
  { name: 'an agent that cannot resend is said', applied: { a: '1.3' }, held: { a: ['1.6'] }, caughtUp: false, reply: { resent: 0, error: 'spool unreadable' }, asked: ['a 4..5'], any: false, said: /^journal a: entries 4\.\.5 are missing from the stream and its agent cannot resend them: spool unreadable$/ },
  { name: 'a replayer of one journal asks for that one only', applied: { a: '1.3', b: '1.1' }, held: { a: ['1.6'], b: ['1.4'] }, caughtUp: false, journal: 'b', asked: ['b 2..3'], any: true },
];

const header = (j: string, p: { e: number; s: number }) => ({ j, e: p.e, s: p.s, t: 1, r: 'data', p: 'f', op: 'put' as const, mode: 0o644 });

for (const c of cases) {
  test(`catch-up: ${c.name}`, async (t) => {
    const source = new MemorySource('UNDERSTUDY');
    for (const [j, list] of Object.entries(c.stream ?? {})) for (const p of list) source.append(j, encodeEntry(header(j, pos(p)), Buffer.from('x')));
    const { created } = await source.info();
    const positions: Record<string, JournalPos> = Object.fromEntries(Object.entries(c.applied ?? {}).map(([j, p]) => [j, { ...pos(p), t: 0 }]));
    const sequencer = new Sequencer<Sequenced>((j) => positions[j], { entries: 100, bytes: 1_000_000 });
    for (const [j, list] of Object.entries(c.held ?? {})) for (const p of list) t.is(sequencer.offer({ h: { j, ...pos(p) }, data: { length: 1 } }).kind, 'held');
    const asked: string[] = [];
    const skipped: string[] = [];
    const lacking: string[] = [];
    const losing: string[] = [];
    const said: string[] = [];
    const agents: Agents = {
      names: async () => Object.keys(c.beats ?? {}),
      heartbeat: async (name): Promise<AgentHeartbeat | undefined> => {
        const b = c.beats?.[name];
        if (b === undefined) return undefined;
        const acked = pos(b.acked);
        return {
          name, epoch: acked.e, mode: 'async', pid: 1, host: 'primary', appended: acked.s, acked: { epoch: acked.e, seq: acked.s }, time: 0, dropped: 0,
          lost: b.lost === undefined ? undefined : [{ from: b.lost[0], to: b.lost[1], at: 0, reason: 'test' }],
          origin: b.origin === undefined ? undefined : { stream: 'UNDERSTUDY', created: b.origin.otherStream === true ? 'another' : created, epoch: b.origin.epoch, seq: b.origin.seq },
        };
      },
      resend: async (name, r) => {
        asked.push(`${name} ${r.from}..${r.to}`);
        if (c.reply === 'silent') throw new Error('no responders');
        return c.reply ?? { resent: r.to - r.from + 1 };
      },
    };
    const catchUp = new CatchUp({
      stream: 'UNDERSTUDY', journal: c.journal, log: (l) => said.push(l), source, agents,
      target: {
        positions: () => positions,
        gap: (name) => sequencer.gap(name),
        caughtUp: () => c.caughtUp,
        skipTo: (name, p) => {
          skipped.push(`${name} ${p.e}.${p.s}`);
          positions[name] = { ...p, t: positions[name]?.t ?? 0 };
        },
        lacks: (name) => void lacking.push(name),
        lost: (why) => void losing.push(why),
      },
    });
    t.is(await catchUp.run(), c.any, 'whether anything was resent or passed');
    t.deepEqual(asked, c.asked, 'what the agents were asked to resend');
    t.deepEqual(skipped, c.skipped ?? [], 'where journals were moved past entries that cannot come');
    t.deepEqual(lacking, c.lacking ?? [], 'journals said to lack entries for good');
    // Entries gone from the stream and every spool make the standby lost (a rebase heals it); an earlier stream's do not (a baseline does).
    t.is(losing.length, c.lost ?? 0, 'times the standby was said lost');
    if (c.said !== undefined) t.true(said.some((l) => c.said!.test(l)), said.join('\n'));
  });
}
