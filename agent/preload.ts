/**
 * `node --require understudy/agent app.js`: starts the agent before the
 * application's first line, configured by UNDERSTUDY_* variables only.
 */
import { startAgent } from './agent';

startAgent();
