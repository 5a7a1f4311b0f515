/** Test and benchmark support shipped with the agent: not part of the daemon. */
export { createLoopVg, loopVgUnavailable, type LoopVg } from './loop-vg.js';
export { AGENT_BIN, startAgentProcess, type AgentOptions, type AgentProcess } from './agent-process.js';
