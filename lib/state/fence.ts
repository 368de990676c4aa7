import { define, numbers, strings } from './record';

/** A journal closed by a promotion, under `fence.<journal>`, for its old primary to see. */
export interface FenceRecord {
  e: number;
  s: number;
  at: string;
  by: string;
}

export const fence = define<FenceRecord>((v) => numbers(v, 'e', 's') && strings(v, 'at', 'by'));
