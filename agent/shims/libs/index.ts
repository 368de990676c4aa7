import type { LibraryShim } from './types';
import { fastqShim } from './fastq';
import { nconfShim } from './nconf';
import { convictShim } from './convict';

/** Every configuration and queue library the agent wraps: what is wrapped is this table. */
export const LIBRARIES: readonly LibraryShim[] = [fastqShim, nconfShim, convictShim];
