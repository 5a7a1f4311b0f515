import { credentials, loadPackageDefinition, Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import { csiPackageDefinition } from '../proto.js';

// Replies are read by tests as the loader decodes them: loosely typed on purpose, in tests only.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Call = (request: object) => Promise<Record<string, any>>;
type Rpc =
  | 'GetPluginInfo' | 'GetPluginCapabilities' | 'Probe'
  | 'CreateVolume' | 'DeleteVolume' | 'ValidateVolumeCapabilities' | 'ListVolumes' | 'GetCapacity'
  | 'ControllerGetCapabilities' | 'CreateSnapshot' | 'DeleteSnapshot' | 'ListSnapshots' | 'ControllerExpandVolume' | 'ControllerGetVolume'
  | 'GroupControllerGetCapabilities' | 'CreateVolumeGroupSnapshot' | 'DeleteVolumeGroupSnapshot' | 'GetVolumeGroupSnapshot'
  | 'NodeStageVolume' | 'NodeUnstageVolume' | 'NodePublishVolume' | 'NodeUnpublishVolume' | 'NodeGetVolumeStats'
  | 'NodeExpandVolume' | 'NodeGetCapabilities' | 'NodeGetInfo';
export type CsiServiceClient = Record<Rpc, Call> & { close(): void };

interface Stub {
  new (address: string, creds: ReturnType<typeof credentials.createInsecure>): Client;
}

const pkg = (loadPackageDefinition(csiPackageDefinition) as unknown as { csi: { v1: Record<string, Stub> } }).csi.v1;

/** A CO's view of the plugin: each RPC of a CSI service as a promise; a refusal rejects with its gRPC status. */
export function csiClient(service: 'Identity' | 'Controller' | 'GroupController' | 'Node', address: string): CsiServiceClient {
  const Ctor = pkg[service]!;
  const client = new Ctor(address, credentials.createInsecure()) as unknown as Record<string, (req: object, md: Metadata, cb: (err: ServiceError | null, res: Record<string, any>) => void) => void> & Client;
  return new Proxy({} as CsiServiceClient, {
    get: (_, name: string) => {
      if (name === 'close') return () => client.close();
      if (name === 'then') return undefined;
      return (request: object) =>
        new Promise((resolve, reject) => {
          const method = client[name];
          if (typeof method !== 'function') {
            reject(new Error(`no RPC ${name} on ${service}`));
            return;
          }
          method.call(client, request, new Metadata(), (err, res) => (err ? reject(err) : resolve(res)));
        });
    },
  });
}

/** The gRPC code a call rejected with (a test's expect(...).rejects helper). */
export async function codeOf(promise: Promise<unknown>): Promise<number | 'ok'> {
  try {
    await promise;
    return 'ok';
  } catch (err) {
    return (err as ServiceError).code;
  }
}
export { status } from '@grpc/grpc-js';
