// Scenarios start real agent processes with the helper the agent ships for tests and benchmarks.
export { AGENT_BIN, TEST_TOKEN, startAgentProcess, type AgentOptions, type AgentProcess } from '@kindling/agent/testing';
