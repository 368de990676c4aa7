import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** A fresh directory under the system's temporary one, removed when the test ends. */
export function tempDir(t: { teardown(fn: () => void): void }, label: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `understudy-${label}-`));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
