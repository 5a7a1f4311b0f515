import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_THIN_POOL_THRESHOLD_PERCENT } from './condition.js';
import type { Mode } from './identity.js';
import { DEFAULT_STATE_DIR } from './plugin.js';
import type { CsiServerOptions } from './server.js';

export const USAGE = `usage: kindling-csi --mode controller|node|all --endpoint unix:///csi/csi.sock
  --agents URL[,URL...]   agents the controller reaches (default KINDLING_URL)
  --node-agent URL        this host's agent, for the node service (default the first agent)
  --token TOKEN | --token-file FILE   (default KINDLING_TOKEN or KINDLING_TOKEN_FILE, read by the SDK)
  --tls-ca FILE --tls-cert FILE --tls-key FILE   the agents' CA, and a client certificate for mutual TLS
                          (default KINDLING_TLS_CA, KINDLING_TLS_CERT, KINDLING_TLS_KEY)
  --max-volumes-per-node N            reported by NodeGetInfo (default 0: no limit)
  --state-dir DIR         the node's own folder, kept across restarts (default ${DEFAULT_STATE_DIR})
  --thin-pool-threshold PERCENT       thin pool fill above which its volumes read abnormal (default ${DEFAULT_THIN_POOL_THRESHOLD_PERCENT})
  --help                  this text`;

/** Flags over environment, as the other Kindling commands do. Throws with the usage on bad input; null for --help. */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv): CsiServerOptions | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      mode: { type: 'string' },
      endpoint: { type: 'string' },
      agents: { type: 'string' },
      'node-agent': { type: 'string' },
      token: { type: 'string' },
      'token-file': { type: 'string' },
      'max-volumes-per-node': { type: 'string' },
      'state-dir': { type: 'string' },
      'thin-pool-threshold': { type: 'string' },
      'tls-ca': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return null;
  const mode = values.mode;
  if (mode !== 'controller' && mode !== 'node' && mode !== 'all') throw new Error(`--mode must be controller, node or all\n${USAGE}`);
  const endpoint = values.endpoint ?? env['CSI_ENDPOINT'];
  if (!endpoint) throw new Error(`--endpoint (or CSI_ENDPOINT) is required\n${USAGE}`);
  const agents = (values.agents ?? env['KINDLING_URL'] ?? '').split(',').map((u) => u.trim()).filter(Boolean);
  const token = values.token ?? (values['token-file'] ? readFileSync(values['token-file'], 'utf8').trim() : undefined);
  const max = Number(values['max-volumes-per-node'] ?? 0);
  if (!Number.isInteger(max) || max < 0) throw new Error('--max-volumes-per-node must be a whole number');
  const threshold = values['thin-pool-threshold'] === undefined ? undefined : Number(values['thin-pool-threshold']);
  if (threshold !== undefined && !(threshold >= 0 && threshold <= 100)) throw new Error('--thin-pool-threshold must be a percent, 0 to 100');
  const pem = (flag: 'tls-ca' | 'tls-cert' | 'tls-key', name: string): string | undefined => {
    const file = values[flag] ?? env[name];
    return file ? readFileSync(file, 'utf8') : undefined;
  };
  const tls = { ca: pem('tls-ca', 'KINDLING_TLS_CA'), cert: pem('tls-cert', 'KINDLING_TLS_CERT'), key: pem('tls-key', 'KINDLING_TLS_KEY') };
  return {
    mode: mode as Mode,
    endpoint,
    agents,
    nodeAgent: values['node-agent'],
    token,
    maxVolumesPerNode: max,
    ...(values['state-dir'] ? { stateDir: values['state-dir'] } : {}),
    ...(threshold === undefined ? {} : { thinPoolThresholdPercent: threshold }),
    ...(tls.ca || tls.cert || tls.key ? { tls } : {}),
  };
}
