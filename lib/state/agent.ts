import type { LostRange, OriginState, UncleanEnd } from '../spool';
import { define, numbers } from './record';

/** What an agent last journaled and shipped (its heartbeat), under `agent.<journal>`. */
export interface AgentHeartbeat {
  name: string;
  epoch: number;
  mode: string;
  pid: number;
  host: string;
  /** Last entry spooled. */
  appended: number;
  /** Last entry JetStream acknowledged. */
  acked: { epoch: number; seq: number };
  time: number;
  /** Changes the agent could not journal because its spool was full. */
  dropped: number;
  /** Where this journal's history begins in the stream (absent from agents older than it). */
  origin?: OriginState;
  /** Entries its spool lost before they were shipped. */
  lost?: LostRange[];
  /** The last process of this journal that died without flushing its ending. */
  unclean?: UncleanEnd;
  /** The stream refuses this journal's entries (full, or another limit) since `since`: they wait in the spool. */
  refused?: { reason: string; since: number };
}

export const agent = define<AgentHeartbeat>((v) =>
  numbers(v, 'epoch', 'appended', 'time') && typeof v.acked === 'object' && v.acked !== null && numbers(v.acked as Record<string, unknown>, 'epoch', 'seq'));
