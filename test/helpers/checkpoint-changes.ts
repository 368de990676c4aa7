import { serialize } from 'node:v8';
import type { CheckpointStandby, Change } from './checkpoint-standby';

/** The changes the checkpoint tests make: a seed with one of everything, then every kind of change. */

export const put = (p: string, data: string, mode = 0o644): Change => ({ r: 'data', p, op: 'put', mode, data });
export const cfg = (key: string[], value: unknown): Change => ({ r: '', p: 'settings', op: 'config', key, data: JSON.stringify(value) });
export const job = (id: string, ev: 'enqueued' | 'completed'): Change => ({ r: '', p: 'jobs', op: 'job', id, ev, captured: true, data: ev === 'enqueued' ? serialize({ id }) : '' });

/** A tree with one of everything an entry can change. */
export function seed(sb: CheckpointStandby): void {
  for (const c of [
    put('a.txt', 'hello'), put('b.txt', 'bee'), put('app.log', 'line1\n'), put('big', '0123456789'), put('t.txt', 'truncate me'),
    { r: 'data', p: 'd', op: 'mkdir', mode: 0o755 }, put('d/x', 'x'), { r: 'data', p: 'd/e', op: 'mkdir', mode: 0o750 }, put('d/e/y', 'y'),
    { r: 'data', p: 'd/ln', op: 'symlink', target: 'x' },
    put('over.txt', 'old'), put('src.txt', 'src'), put('m.txt', 'mode'), put('linked.txt', 'shared'),
    { r: 'data', p: 'alias.txt', op: 'link', fromRoot: 'data', from: 'linked.txt' },
    { r: 'data', p: 'keepdir', op: 'mkdir', mode: 0o755 },
    cfg(['a'], 1), job('1.1', 'enqueued'),
  ] as Change[]) sb.apply(c);
}

/** Every kind of change, after a reach. */
export const EVERY_CHANGE: Change[] = [
  put('a.txt', 'changed'),
  { r: 'data', p: 'app.log', op: 'append', at: 6, data: 'line2\n' },
  { r: 'data', p: 'big', op: 'pwrite', at: 2, data: 'XX' },
  { r: 'data', p: 't.txt', op: 'truncate', size: 3 },
  { r: 'data', p: 'b.txt', op: 'rm' },
  { r: 'data', p: 'd', op: 'rm' },
  { r: 'data', p: 'src.txt', op: 'rename', toRoot: 'data', to: 'over.txt' },
  { r: 'data', p: 'new/deep', op: 'mkdir', mode: 0o755 },
  put('new/deep/f', 'f'),
  { r: 'data', p: 'sl', op: 'symlink', target: 'a.txt' },
  { r: 'data', p: 'm.txt', op: 'chmod', mode: 0o600 },
  { r: 'data', p: 'keepdir', op: 'mkdir', mode: 0o700 },
  // In place through one name of an inode with two: the other name changes too, and is kept.
  { r: 'data', p: 'alias.txt', op: 'pwrite', at: 0, data: 'SH' },
  { r: 'data', p: 'hl', op: 'link', fromRoot: 'data', from: 'a.txt' },
  // The new inode of a.txt, reached through its second name: nothing of the checkpoint's changes.
  { r: 'data', p: 'hl', op: 'append', at: 7, data: '!' },
  cfg(['a'], 2), cfg(['b'], 3), job('1.1', 'completed'), job('1.2', 'enqueued'),
];

