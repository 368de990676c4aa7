import { define, numbers, strings } from './record';

/** The last baseline of a name, under `baseline.<name>`. */
export interface BaselineReport {
  state: 'running' | 'done' | 'failed';
  started: number;
  finished?: number;
  roots: string[];
  objects: number;
  bytes: number;
  error?: string;
}

export const baseline = define<BaselineReport>((v) => strings(v, 'state') && numbers(v, 'started', 'objects', 'bytes') && Array.isArray(v.roots));
