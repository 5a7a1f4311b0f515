import {
  PROTOCOL_VERSION,
  ProtocolError,
  type OpName,
  type OpResult,
  type ParsedOpArgs,
} from '@kindling/protocol';
import { capabilitiesOf } from '../service/capabilities.js';
import { backendPage, changesPage, groupPage } from '../service/listing.js';
import type { Services } from '../services.js';
import type { Transfers } from '../transfer/index.js';
import type { CallContext, RequestLedger } from './requests.js';

type Handler<O extends OpName> = (args: ParsedOpArgs<O>, call: CallContext) => Promise<OpResult<O>> | OpResult<O>;
export type Handlers = { [O in OpName]: Handler<O> };

/** The RPC surface: each op, already validated against its schema, handed to its service. */
export function createHandlers(s: Services, ledger: RequestLedger, transfers: Transfers): Handlers {
  return {
    hello: (args) => {
      if (args.protocolVersion !== PROTOCOL_VERSION) {
        throw new ProtocolError(`protocol version ${args.protocolVersion} is not supported; this agent speaks ${PROTOCOL_VERSION}`, {
          supported: PROTOCOL_VERSION,
        });
      }
      return {
        protocolVersion: PROTOCOL_VERSION,
        agentVersion: s.agentVersion,
        hostId: s.hostId,
        backends: s.backends.list(),
        changes: s.index.changes.position(),
      };
    },
    'backend.list': (a) => backendPage(s.backends.list(), a),
    'backend.stats': (a) => s.backends.stats(a.backend, a.refresh ?? false),
    'backend.capabilities': (a) => capabilitiesOf(s.backends.get(a.backend)),
    'backend.validateConnector': (a) => {
      s.backends.usable(a.backend).validateConnector(a.connector);
      return { valid: true };
    },
    'volume.create': (a, call) => s.volumes.create(a, call.newId),
    'volume.get': (a) => s.volumes.get(a.id),
    'volume.list': (a) => s.volumes.list(a),
    'volume.delete': (a) => s.volumes.delete(a.id),
    'volume.extend': (a) => s.volumes.extend(a.id, a.size),
    'volume.clone': (a, call) => s.volumes.clone(a, call.newId),
    'volume.revert': (a) => s.snapshots.revert(a.id, a.snapshotId),
    'volume.attach': (a) => s.connections.attach(a.id),
    'volume.detach': (a) => s.connections.detach(a.id),
    'volume.connect': (a) => s.connections.connect(a.id, a.connector),
    'volume.resetState': (a) => s.volumes.resetState(a.id),
    'connection.get': (a) => s.connections.get(a.id),
    'connection.list': (a) => s.connections.list(a),
    'connection.delete': (a) => s.connections.disconnect(a.id),
    'connection.extend': (a) => s.connections.extend(a.id),
    'snapshot.create': (a, call) => s.snapshots.create(a, call.newId),
    'snapshot.get': (a) => s.snapshots.get(a.id),
    'snapshot.list': (a) => s.snapshots.list(a),
    'snapshot.delete': (a) => s.snapshots.delete(a.id),
    'snapshot.createVolume': (a, call) => s.snapshots.createVolume(a, call.newId),
    'group.create': (a, call) => s.groups.create(a, call.newId),
    'group.get': (a) => s.groups.get(a.id),
    'group.list': (a) => groupPage(s.groups.list(), a),
    'group.delete': (a) => s.groups.delete(a.id),
    'kv.get': async (a) => ({ value: await s.index.kvGet(a.key) }),
    'kv.set': async (a) => {
      await s.index.kvSet(a.key, a.value);
      return { ok: true };
    },
    'kv.delete': async (a) => ({ existed: await s.index.kvDelete(a.key) }),
    'changes.list': (a) => changesPage(s.index, a),
    'events.follow': (a, call) => {
      if (!call.follow) throw new ProtocolError('events.follow is for sessions');
      return call.follow.set(a);
    },
    'request.cancel': async (a) => ({ cancelled: await ledger.cancel(a.requestId) }),
    'transfer.open': (a) => transfers.source.open(a),
    'volume.copyFrom': (a, call) => transfers.target.copyFrom(a, call.newId),
  };
}
