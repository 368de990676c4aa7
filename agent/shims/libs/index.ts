import type { LibraryShim } from './types';
import { fastqShim } from './fastq';
import { nconfShim } from './nconf';
import { convictShim } from './convict';
import { betterQueueShim } from './better-queue';
import { pQueueShim } from './p-queue';
import { confShim } from './conf';
import { betterSqliteShim } from './better-sqlite3';

/** Every configuration, queue and database library the agent wraps: what is wrapped is this table. */
export const LIBRARIES: readonly LibraryShim[] = [fastqShim, nconfShim, convictShim, betterQueueShim, pQueueShim, confShim, betterSqliteShim];
