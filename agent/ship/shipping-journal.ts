/**
 * One journal as its shipper sees it: who it is, the positions it shares with the application
 * thread, and what it keeps of its shipping in its spool directory (acked.json, origin.json,
 * lost.json, unclean.json). Every part of the shipper works on this one object.
 */
import { firstFrame, listSegments, readJson, spoolFiles, type AckedState, type LostRange, type OriginState, type UncleanEnd } from '../../lib/spool';
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
  readonly files: ReturnType<typeof spoolFiles>;

  /** Reads what the spool directory keeps; throws JournalError when a file of it is unreadable. */
  constructor(data: Pick<ShipperData, 'name' | 'dir' | 'stream' | 'epoch' | 'mode' | 'firstSeq' | 'shared'>) {
    ({ name: this.name, dir: this.dir, stream: this.stream, epoch: this.epoch, mode: this.mode, firstSeq: this.firstSeq, shared: this.shared } = data);
    this.files = spoolFiles(this.dir);
    const acked = readJson<AckedState>(this.files.acked) ?? { epoch: 0, seq: 0 };
    this.origin = readJson<OriginState>(this.files.origin);
    this.lost = readLost(this.dir);
    this.unclean = readJson<UncleanEnd>(this.files.unclean);
    this.acked = new AckedPosition(this.name, this.files.acked, this.shared, acked);
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
