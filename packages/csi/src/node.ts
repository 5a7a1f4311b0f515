import { mkdir, rmdir, stat, statfs, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { GIB, NotFoundError, UnavailableError, type Agent, type Volume } from '@kindling/sdk';
import { filesystemOf, requireCapability, unsupportedCapability } from './capabilities.js';
import { attachDevice, contentsOf, detachDevice, growLoop, isMissing, releaseLocal, undoAttach } from './devices.js';
import { fault } from './faults.js';
import { conditionOf } from './health.js';
import { mountsOfVolume } from './local.js';
import { CsiError, grpcStatusOf, invalid, notFound, required } from './errors.js';
import { must } from './exec.js';
import { parseVolumeHandle } from './ids.js';
import { InFlight } from './locks.js';
import { canonical, mountAt } from './mounts.js';
import { topologyOf } from './present.js';
import type {
  NodeExpandVolumeRequest,
  NodeGetVolumeStatsRequest,
  NodePublishVolumeRequest,
  NodeStageVolumeRequest,
  NodeUnpublishVolumeRequest,
  NodeUnstageVolumeRequest,
  VolumeCapability,
} from './types.js';

/** Block volumes are staged as a bind of the device onto this file inside the staging folder. */
const BLOCK_FILE = 'block';

function capability(cap: VolumeCapability | null): VolumeCapability {
  const checked = requireCapability(cap);
  const why = unsupportedCapability(checked);
  if (why) throw invalid(why);
  return checked;
}

export interface NodeOptions {
  /** 0: no limit. */
  maxVolumesPerNode: number;
  /** The node's own folder (qcow2 volumes are served as files there); kept across plugin restarts. */
  stateDir: string;
  /** Where the node says what it could not finish. */
  log: (line: string) => void;
}

/**
 * The CSI Node service for the host of one agent. Keeps nothing but the unstages whose agent half
 * waits for the agent: what is staged and published, and which volume a device is, are read from the
 * mount table and sysfs (local.ts); what is attached from the agent's connections.
 */
export class Node {
  readonly #agent: Agent;
  readonly #options: NodeOptions;
  readonly #inFlight = new InFlight();
  /** Volumes unstaged while the agent was away, whose attachment the agent still records. */
  readonly #pending = new Set<string>();

  constructor(agent: Agent, options: NodeOptions) {
    this.#agent = agent;
    this.#options = options;
    agent.on('reconnect', () => void this.#finishPending());
  }

  #log(line: string): void {
    this.#options.log(JSON.stringify({ event: 'node', message: line }));
  }

  nodeGetInfo() {
    const hostId = this.#agent.hostId;
    return { nodeId: hostId, maxVolumesPerNode: this.#options.maxVolumesPerNode, accessibleTopology: topologyOf(hostId) };
  }

  nodeGetCapabilities() {
    return { capabilities: ['STAGE_UNSTAGE_VOLUME', 'GET_VOLUME_STATS', 'EXPAND_VOLUME', 'VOLUME_CONDITION'].map((type) => ({ rpc: { type } })) };
  }

  /** The volume on this node's agent; NOT_FOUND for another host's or one that is gone. */
  async #volume(id: string): Promise<Volume> {
    const ref = parseVolumeHandle(id);
    if (!ref) throw notFound(`volume ${id} does not exist`);
    if (ref.hostId !== this.#agent.hostId) throw notFound(`volume ${id} lives on host ${ref.hostId}, not on this node (${this.#agent.hostId})`);
    try {
      const [volume] = await (await this.#agent.backend(ref.backend)).volumesFiltered({ volumeId: ref.volumeId });
      if (volume && volume.status !== 'deleted') return volume;
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    throw notFound(`volume ${id} does not exist`);
  }

  /** The volume, or null when it is not (or no longer) this node's to act on. */
  async #volumeIfHere(id: string): Promise<Volume | null> {
    return this.#volume(id).catch((err: unknown) => {
      if (err instanceof CsiError && err.code === status.NOT_FOUND) return null;
      throw err;
    });
  }

  async nodeStageVolume(req: NodeStageVolumeRequest): Promise<Record<string, never>> {
    const id = required(req.volumeId, 'volume_id');
    const given = required(req.stagingTargetPath, 'staging_target_path');
    const cap = capability(req.volumeCapability);
    return this.#inFlight.run([`volume:${id}`], async () => {
      const staging = await canonical(given);
      const volume = await this.#volume(id);
      // Staged again: an earlier unstage's deferred detach no longer applies.
      this.#pending.delete(id);
      // All or nothing: kubelet never calls NodeUnstage after a final error, so a failed stage
      // that left the volume attached would keep it in-use for good.
      try {
        const device = await attachDevice(volume, this.#options.stateDir);
        fault('stage:attached');
        await this.#stage(id, volume, device, staging, cap);
      } catch (err) {
        throw await undoAttach(volume, this.#options.stateDir, err);
      }
      return {};
    });
  }

  async #stage(id: string, volume: Volume, device: string, staging: string, cap: VolumeCapability): Promise<void> {
    const at = cap.block ? join(staging, BLOCK_FILE) : staging;
    if ((await mountsOfVolume(volume.id)).some((m) => m.mountPoint === at)) return;
    const other = await mountAt(at);
    if (other) throw new CsiError(status.ALREADY_EXISTS, `${at} holds another device (${other.source})`);
    if (cap.block) {
      await mkdir(staging, { recursive: true });
      await writeFile(at, '', { flag: 'a' });
      await must('mount', ['--bind', device, at]);
      return;
    }
    const wanted = filesystemOf(cap);
    const contents = await contentsOf(device);
    let type: string = wanted;
    // Only a blank device is formatted: whatever holds a signature of any kind is never overwritten.
    if (contents.blank) await must(`mkfs.${wanted}`, ['-q', device]);
    else {
      if (!contents.filesystem) throw new CsiError(status.FAILED_PRECONDITION, `volume ${id} is not blank and holds no filesystem: found ${contents.found}`);
      if (cap.mount?.fsType && contents.filesystem !== wanted) {
        throw new CsiError(status.FAILED_PRECONDITION, `volume ${id} holds ${contents.filesystem}, not the ${wanted} asked for`);
      }
      type = contents.filesystem;
    }
    await mkdir(staging, { recursive: true });
    const flags = cap.mount?.mountFlags ?? [];
    await must('mount', ['-t', type, ...(flags.length ? ['-o', flags.join(',')] : []), device, staging]);
  }

  /** Works from the mount table alone; the agent's half (its attachment) waits for the agent if it is away. */
  async nodeUnstageVolume(req: NodeUnstageVolumeRequest): Promise<Record<string, never>> {
    const id = required(req.volumeId, 'volume_id');
    const given = required(req.stagingTargetPath, 'staging_target_path');
    return this.#inFlight.run([`volume:${id}`], async () => {
      const staging = await canonical(given);
      const file = join(staging, BLOCK_FILE);
      const ref = parseVolumeHandle(id);
      const mounts = ref ? await mountsOfVolume(ref.volumeId) : [];
      const staged = mounts.find((m) => m.mountPoint === staging || m.mountPoint === file);
      // In use at another path: not staged here, so nothing here to undo and the device stays.
      if (mounts.length && !staged) return {};
      if (staged) {
        const others = mounts.filter((m) => m !== staged);
        if (others.length) throw new CsiError(status.FAILED_PRECONDITION, `volume ${id} is still published at ${others.map((m) => m.mountPoint).join(', ')}`);
        await must('umount', [staged.mountPoint]);
      }
      // Whatever else the path holds (another volume's stage) is not this volume's to unmount.
      if (!(await mountAt(file))) {
        await unlink(file).catch((err: unknown) => {
          if (!isMissing(err)) throw err;
        });
      }
      if (ref) {
        // The node's half goes now, the agent's attachment when it answers.
        await releaseLocal(ref.volumeId, this.#options.stateDir);
        await this.#detachThroughAgent(id);
      }
      return {};
    });
  }

  /** The agent's half of an unstage. Deferred while the agent is away: the next link up finishes it. */
  async #detachThroughAgent(id: string): Promise<void> {
    this.#pending.add(id);
    if (!this.#agent.connected) return;
    try {
      const volume = await this.#volumeIfHere(id);
      if (volume) await detachDevice(volume, this.#options.stateDir);
      this.#pending.delete(id);
    } catch (err) {
      if (!(err instanceof UnavailableError)) throw err;
    }
  }

  /** Unstages whose agent half waited: each is finished now, unless the volume was staged again meanwhile. */
  async #finishPending(): Promise<void> {
    for (const id of [...this.#pending]) {
      const ref = parseVolumeHandle(id);
      await this.#inFlight
        .run([`volume:${id}`], async () => {
          if (ref && (await mountsOfVolume(ref.volumeId)).length) this.#pending.delete(id);
          else await this.#detachThroughAgent(id);
        })
        .catch((err: unknown) => this.#log(`detaching volume ${id} after its unstage failed, tried again at the next reconnect: ${grpcStatusOf(err).details}`));
    }
  }

  async nodePublishVolume(req: NodePublishVolumeRequest): Promise<Record<string, never>> {
    const id = required(req.volumeId, 'volume_id');
    const givenStaging = required(req.stagingTargetPath, 'staging_target_path');
    const givenTarget = required(req.targetPath, 'target_path');
    const cap = capability(req.volumeCapability);
    return this.#inFlight.run([`volume:${id}`], async () => {
      const [staging, target] = await Promise.all([canonical(givenStaging), canonical(givenTarget)]);
      await this.#volume(id);
      const source = cap.block ? join(staging, BLOCK_FILE) : staging;
      const staged = await mountAt(source);
      if (!staged) throw new CsiError(status.FAILED_PRECONDITION, `volume ${id} is not staged at ${staging}`);
      const readonly = req.readonly || cap.accessMode?.mode === 'SINGLE_NODE_READER_ONLY';
      const published = await mountAt(target);
      if (published) {
        if (published.device !== staged.device || published.root !== staged.root) throw new CsiError(status.ALREADY_EXISTS, `${target} holds another mount (${published.source})`);
        if (published.options.includes('ro') !== readonly) throw new CsiError(status.ALREADY_EXISTS, `${target} holds volume ${id} published ${readonly ? 'read-write' : 'read-only'}`);
        return {};
      }
      if (cap.block) {
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, '', { flag: 'a' });
      } else {
        await mkdir(target, { recursive: true });
      }
      await must('mount', ['--bind', source, target]);
      // A bind takes the source's flags; read-only needs a remount of the bind itself. Should that
      // fail, the writable bind goes too: a retry must not find it and answer OK.
      if (readonly) {
        await must('mount', ['-o', 'remount,bind,ro', target]).catch(async (err: unknown) => {
          await must('umount', [target]);
          throw err;
        });
      }
      return {};
    });
  }

  /** Works from the mount table alone: no agent asked. */
  async nodeUnpublishVolume(req: NodeUnpublishVolumeRequest): Promise<Record<string, never>> {
    const id = required(req.volumeId, 'volume_id');
    const given = required(req.targetPath, 'target_path');
    return this.#inFlight.run([`volume:${id}`], async () => {
      const target = await canonical(given);
      const ref = parseVolumeHandle(id);
      const published = async () => ref !== null && (await mountsOfVolume(ref.volumeId)).some((m) => m.mountPoint === target);
      while (await published()) await must('umount', [target]);
      // A mount left at the target is another volume's: this one is not published there.
      if (await mountAt(target)) return {};
      try {
        if ((await stat(target)).isDirectory()) await rmdir(target);
        else await unlink(target);
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
      return {};
    });
  }

  async nodeGetVolumeStats(req: NodeGetVolumeStatsRequest) {
    const id = required(req.volumeId, 'volume_id');
    const path = await canonical(required(req.volumePath, 'volume_path'));
    const volume = await this.#volume(id);
    const info = await stat(path).catch((err: unknown) => {
      if (isMissing(err)) throw notFound(`${path} does not exist`);
      throw err;
    });
    if (!(await mountAt(path))) throw notFound(`volume ${id} is not mounted at ${path}`);
    const volumeCondition = await conditionOf(volume.id, this.#options.stateDir);
    if (info.isBlockDevice() || info.isFile()) {
      const total = Number((await must('blockdev', ['--getsize64', path])).trim());
      return { usage: [{ unit: 'BYTES', total, available: 0, used: 0 }], volumeCondition };
    }
    const fs = await statfs(path);
    return {
      usage: [
        { unit: 'BYTES', total: fs.blocks * fs.bsize, available: fs.bavail * fs.bsize, used: (fs.blocks - fs.bfree) * fs.bsize },
        { unit: 'INODES', total: fs.files, available: fs.ffree, used: fs.files - fs.ffree },
      ],
      volumeCondition,
    };
  }

  async nodeExpandVolume(req: NodeExpandVolumeRequest) {
    const id = required(req.volumeId, 'volume_id');
    const given = required(req.volumePath, 'volume_path');
    return this.#inFlight.run([`volume:${id}`], async () => {
      const path = await canonical(given);
      const volume = await this.#volume(id);
      const mounted = await mountAt(path);
      if (!mounted) throw notFound(`volume ${id} is not mounted at ${path}`);
      const device = await attachDevice(volume, this.#options.stateDir);
      // A loop device keeps the size it was set up with until told to read its file again.
      if (device.startsWith('/dev/loop')) await growLoop(device, volume.size * GIB);
      if (!req.volumeCapability?.block && !(await stat(path)).isFile()) {
        if (mounted.fsType === 'xfs') await must('xfs_growfs', [path]);
        else if (mounted.fsType.startsWith('ext')) await must('resize2fs', [device]);
        else throw new CsiError(status.FAILED_PRECONDITION, `cannot grow a ${mounted.fsType} filesystem`);
      }
      return { capacityBytes: volume.size * GIB };
    });
  }
}
