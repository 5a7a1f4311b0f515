export { startCsiServer, type CsiServer, type CsiServerOptions } from './server.js';
export { parseCli } from './main.js';
export { CSI_SPEC_VERSION, PLUGIN_NAME, PLUGIN_VERSION, TOPOLOGY_KEY } from './plugin.js';
export { PROTO_FILE } from './proto.js';
