export { startAgent, type RunningAgent, type StopOptions } from './agent.js';
export { parseConfig, loadConfigFile, DEFAULT_CONFIG, ConfigError, type AgentConfig, type BackendConfig } from './config.js';
export type { Driver } from './drivers/driver.js';
