import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** One object of a tree as replication must preserve it. */
export interface Node {
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  size?: number;
  sha256?: string;
  target?: string;
}

/** Every object below `root` (not following links), by relative path. */
export function readTree(root: string): Map<string, Node> {
  const out = new Map<string, Node>();
  const walk = (dir: string, rel: string): void => {
    for (const name of fs.readdirSync(dir).sort()) {
      const abs = path.join(dir, name);
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = fs.lstatSync(abs);
      if (st.isSymbolicLink()) out.set(r, { type: 'symlink', mode: 0, target: fs.readlinkSync(abs) });
      else if (st.isDirectory()) {
        out.set(r, { type: 'dir', mode: st.mode & 0o7777 });
        walk(abs, r);
      } else if (st.isFile()) {
        out.set(r, { type: 'file', mode: st.mode & 0o7777, size: st.size, sha256: createHash('sha256').update(fs.readFileSync(abs)).digest('hex') });
      }
    }
  };
  walk(root, '');
  return out;
}

/** Differences between two trees, one line each; empty when they are equal. */
export function diffTrees(primary: string, standby: string): string[] {
  const a = readTree(primary);
  const b = readTree(standby);
  const out: string[] = [];
  for (const [rel, na] of a) {
    const nb = b.get(rel);
    if (nb === undefined) out.push(`missing on standby: ${rel} (${na.type})`);
    else if (JSON.stringify(na) !== JSON.stringify(nb)) out.push(`differs: ${rel} primary=${JSON.stringify(na)} standby=${JSON.stringify(nb)}`);
  }
  for (const rel of b.keys()) if (!a.has(rel)) out.push(`extra on standby: ${rel}`);
  return out;
}
