/**
 * One journal as its shipper sees it: who it is, the positions it shares with the application
 * thread, and what it keeps of its shipping in its spool directory (acked.json, origin.json,
 * lost.json, unclean.json). Every part of the shipper works on this one object.
 */
import { firstFrame, listSegments, readJson, spoolFiles, type AckedState, type LostRange, type OriginState, type UncleanEnd } from '../../lib/spool';
import type { MessagePort } from 'node:worker_threads';
import type { NatsSettings, SpoolFsync } from '../../lib/settings';
import { APPENDED, HURRY, readPosition } from '../shared-state';
import { readLost } from '../spool-gap';
import { AckedPosition } from './acked-position';

/** What the application thread hands the worker. */
export interface ShipperData {
  nats: NatsSettings;
  stream: string;
  name: string;
  dir: string;
  epoch: number;
  mode: string;
  shared: BigInt64Array;
  signingKey?: string;
  /** First sequence number this process journals; older ones are left over from earlier processes. */
  firstSeq: number;
  spoolFsync: SpoolFsync;
  /** The worker's end of the control channel with the application thread (checkpoint commits); absent in a shipper started without one. */
  control?: MessagePort;
  /** The agent's roots (`name=/abs/dir`) when this shipper also serves lost standbys' rebase requests (the process's own journal). */
  rebaseRoots?: string[];
}

/** Who the journal is and where its spool lies. */
export type JournalIdentity = Pick<ShipperData, 'name' | 'dir' | 'stream' | 'epoch' | 'mode' | 'firstSeq' | 'shared'>;

/** What a journal's spool directory keeps of its shipping across processes. */
export interface KeptState {
  acked: AckedState;
  origin: OriginState | undefined;
  lost: LostRange[];
  unclean: UncleanEnd | undefined;
}

/** The journal being shipped and its shipping state. */
export class ShippingJournal {
  readonly name: string;
  readonly dir: string;
  readonly stream: string;
  readonly epoch: number;
  readonly mode: string;
  readonly firstSeq: number;
  readonly shared: BigInt64Array;
  readonly acked: AckedPosition;
  /** Where this journal's history begins in the stream it ships to, once known. */
  origin: OriginState | undefined;
  /** Entries this journal's spool lost before they were shipped, reported in every heartbeat. */
  lost: LostRange[];
  /** The last process of this journal that died without flushing its ending, if any (the journal found it when it took the lock). */
  readonly unclean: UncleanEnd | undefined;
  /** Since when and why the stream refuses this journal's entries, while it does (reported in every heartbeat). */
  refused: { reason: string; since: number } | undefined;
  readonly files: ReturnType<typeof spoolFiles>;

  /** `kept`: what the spool directory keeps of the journal's shipping (see open). */
  constructor(data: JournalIdentity, kept: KeptState) {
    ({ name: this.name, dir: this.dir, stream: this.stream, epoch: this.epoch, mode: this.mode, firstSeq: this.firstSeq, shared: this.shared } = data);
    this.files = spoolFiles(this.dir);
    this.origin = kept.origin;
    this.lost = kept.lost;
    this.unclean = kept.unclean;
    this.acked = new AckedPosition(this.name, this.files.acked, this.shared, kept.acked);
  }

  /** The journal with what its spool directory keeps; throws JournalError when a file of it is unreadable. */
  static open(data: JournalIdentity): ShippingJournal {
    const files = spoolFiles(data.dir);
    return new ShippingJournal(data, {
      acked: readJson<AckedState>(files.acked) ?? { epoch: 0, seq: 0 },
      origin: readJson<OriginState>(files.origin),
      lost: readLost(data.dir),
      unclean: readJson<UncleanEnd>(files.unclean),
    });
  }

  /** The last entry the application appended to the spool. */
  appended(): number {
    return readPosition(this.shared, APPENDED);
  }

  /** Whether the application waits for what is spooled now (a flush, an exit). */
  hurried(): boolean {
    return readPosition(this.shared, HURRY) >= readPosition(this.shared, APPENDED);
  }

  /** Epoch and seq of the oldest entry the spool still holds, if it holds any. */
  oldestSpooled(): { e: number; s: number } | undefined {
    const first = listSegments(this.dir)[0];
    return first === undefined ? undefined : firstFrame(first.file);
  }
}
