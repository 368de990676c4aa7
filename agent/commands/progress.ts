/** Moved to lib/ (the replayer's restore shows progress too); kept here for the agent's commands. */
export { Progress, type Counts } from '../../lib/progress';
