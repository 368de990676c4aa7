/**
 * A rebase child: `node rebase-child-main.js <parent pid> <cli args…>` runs `understudy <cli
 * args…>` (dist/cli.js, as the package's "bin" does) and ends when the agent that started it
 * is no longer its parent. An orphan would go on holding its journal's spool lock, so the agent
 * that takes the request over could not run the same baseline.
 */
import * as path from 'node:path';
import { DEFAULTS } from '../../lib/settings';

const [parentArg, ...args] = process.argv.slice(2);
const parent = Number(parentArg);
const cli = path.join(__dirname, '..', '..', 'cli.js');
setInterval(() => {
  if (process.ppid !== parent) {
    process.stderr.write(`understudy: the agent that started this (pid ${parent}) is gone; stopping\n`);
    process.exit(70);
  }
}, DEFAULTS.rebase.parentCheckMs).unref();
process.argv = [process.argv[0], cli, ...args];
require(cli);
