/** Test and benchmark support shipped with the agent: not part of the daemon. */
export { createLoopVg, loopVgUnavailable, type LoopVg } from './loop-vg.js';
export { AGENT_BIN, TEST_TOKEN, startAgentProcess, type AgentOptions, type AgentProcess } from './agent-process.js';
export { createCrashShim, type ArmedStall, type CrashShim, type Stall, type StallRule } from './crash-shim.js';
export { auditNfsShare, virtualSize, type ShareAudit } from './nfs-share.js';
export { activeFile, imageReadsPattern, readsPattern, snapshotReadsPattern, writePattern, type NfsVolume } from './nfs-data.js';
export { requires } from './requirement.js';
export type { FaultPoint } from '../drivers/nfs/faults.js';
export { ownerTag, partFile } from '../drivers/nfs/names.js';
export { IndexStore } from '../index/store.js';
export { snapshotRecord, volumeRecord } from './records.js';
export { writeVolumeDataset, type Dataset, type DatasetOptions } from './dataset.js';
export { relayTo, type Relay } from './relay.js';
