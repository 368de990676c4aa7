import { define, numbers } from './record';

/** The last verify of a name, under `verify.<name>`. */
export interface VerifyReport {
  time: number;
  roots: string[];
  equal: boolean;
  differences: number;
  repaired: number;
  /** Objects that kept changing throughout and so could not be compared. */
  unsettled: number;
  /** The standby compared with (its key; absent from verifies older than per-standby verify). */
  standby?: string;
}

export const verify = define<VerifyReport>((v) => numbers(v, 'time', 'differences', 'repaired') && typeof v.equal === 'boolean' && Array.isArray(v.roots));
