import { loadPackageDefinition, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { resolve } from 'node:path';

/** The schema shipped with the package (proto/csi.proto), next to src/ and dist/ alike. */
export const PROTO_FILE = resolve(import.meta.dirname, '../proto/csi.proto');

/**
 * camelCase fields, enums as their names, int64 as JS numbers (byte counts stay below 2^53), and
 * unset fields as their defaults, so handlers read '' and 0 as the specification says to.
 */
const definition = loadSync(PROTO_FILE, { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true });
const csi = (loadPackageDefinition(definition) as unknown as { csi: { v1: Record<string, { service: ServiceDefinition }> } }).csi.v1;

function service(name: string): ServiceDefinition {
  const found = csi[name];
  if (!found) throw new Error(`csi.proto lacks service ${name}`);
  return found.service;
}

export const IdentityService = service('Identity');
export const ControllerService = service('Controller');
export const NodeService = service('Node');
export const GroupControllerService = service('GroupController');
export { definition as csiPackageDefinition };
