#!/usr/bin/env node
import { SettingsError, UnderstudyError } from './lib/errors';
import { replay } from './replayer/commands/replay';
import { inspect } from './replayer/commands/inspect';
import { status } from './replayer/commands/status';
import { promote } from './replayer/commands/promote';
import { config } from './replayer/commands/config';
import { queue } from './replayer/commands/queue';
import { standby } from './replayer/commands/standby';
import { checkpoints } from './replayer/commands/checkpoints';
import { restore } from './replayer/commands/restore';
import { baseline } from './agent/commands/baseline';
import { verify } from './agent/commands/verify';
import { watchCommand } from './agent/commands/watch';
import { checkpoint } from './agent/commands/checkpoint';

type Command = (argv: string[], env: NodeJS.ProcessEnv) => Promise<number>;

/**
 * One file per subcommand; the names are the user-facing contract. Standby commands
 * live in replayer/commands, primary commands (they journal) in agent/commands.
 */
const COMMANDS: Record<string, Command> = { replay, inspect, status, promote, config, queue, standby, checkpoints, restore, baseline, verify, watch: watchCommand, checkpoint };

/** Named in the contract but not built in this version: say so plainly rather than pretend. */
const NOT_BUILT: string[] = [];

const HELP = `understudy <command> [flags]

  replay     apply the journal to the standby's roots (--drain: until caught up)
  inspect    print journal entries from the stream (--json)
  status     positions of each journal: agent, stream, standby, and the lag
  promote    make this standby the primary: apply what it can, fence the old primary, report
  config     config show [STORE]: the standby's replica of a configuration store
  queue      queue pending [NAME]: jobs enqueued on the primary and not finished there
  standby    standby drop NAME: forget a standby for good (the stream and spools stop keeping for it)
  checkpoints  the checkpoints this standby reached (a point-in-time copy kept of each), pending, failed
  restore    restore --checkpoint NAME --to DIR: the roots and replicas as they were at a checkpoint

On the primary:
  baseline   journal the roots' current state, so that an empty standby becomes complete
  verify     compare the roots with the standby (--repair: and mend what differs)
  watch      journal what processes without the agent change under the roots
  checkpoint checkpoint NAME: a consistent cut across every live agent (--every 60s: keep taking them)

${NOT_BUILT.length > 0 ? `Not built yet: ${NOT_BUILT.join(', ')}.\n` : ''}Run "understudy <command> --help" for a command's flags.`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(HELP);
    return cmd === undefined ? 2 : 0;
  }
  const run = COMMANDS[cmd];
  if (run === undefined) {
    if (NOT_BUILT.includes(cmd)) {
      console.error(`understudy ${cmd}: not built in this version (see README, "What is not built yet")`);
      return 2;
    }
    console.error(`understudy: unknown command "${cmd}"\n\n${HELP}`);
    return 2;
  }
  try {
    return await run(rest, process.env);
  } catch (err) {
    const e = err as Error;
    console.error(`understudy ${cmd}: ${e instanceof UnderstudyError ? e.message : e.stack ?? e.message}`);
    return e instanceof SettingsError ? 2 : 1;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
