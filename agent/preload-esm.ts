/**
 * `node --import understudy/agent app.mjs`: everything `--require` does, and an
 * import-in-the-middle loader so that the libraries an ES module imports (p-queue
 * and conf are ESM-only) are wrapped too.
 */
import { startAgent } from './agent';
import { installImportHooks } from './shims/esm-hooks';

if (startAgent() !== undefined) installImportHooks();
