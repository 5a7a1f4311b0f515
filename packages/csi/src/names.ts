import { createHash } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type { Fleet, FleetAgent, Volume } from '@kindling/sdk';
import { CsiError } from './errors.js';
import type { VolumeRef } from './ids.js';

/**
 * Where a CSI volume name is kept, so CreateVolume's by-name check asks one agent, not the fleet.
 *
 * Each name has a home agent, chosen by rendezvous hashing (the highest sha256 of name and agent URL):
 * the same for every controller given the same agents, and adding or removing one agent moves only
 * the names whose home it is or becomes (modulo hashing over a sorted list would move almost all).
 * URLs, not host ids: they are known before an agent ever answers, so the home of every name is known
 * even while some agent has never been reached. The home's kv store holds `name → pending` before the
 * create and `name → where the volume is` after, so a retry whose reply was lost finds the volume with
 * one read; a `pending` left by a crash between the two is settled by asking where the volume may be.
 * Limits: a fleet whose agent list changes while a create is retried may look at a new home and not
 * find the record (the volume carries its CSI name in its metadata, so it stays findable by listing).
 */
export type NameRecord = { pending: true } | { pending: false; ref: VolumeRef };

const KEY_PREFIX = 'csi.kindling.io/volume-name/';
const digest = (text: string): string => createHash('sha256').update(text).digest('hex');
/** A key of bounded length for any name (kv keys are at most 255 characters). */
const keyOf = (name: string): string => `${KEY_PREFIX}${digest(name)}`;

interface Stored {
  name: string;
  ref?: VolumeRef;
}

export class NameRecords {
  constructor(private readonly fleet: Fleet) {}

  /** The agent that keeps this name; UNAVAILABLE while it is down (whether the name is taken cannot be told). */
  home(name: string): FleetAgent {
    let best: FleetAgent | null = null;
    let bestScore = '';
    for (const agent of this.fleet.agents) {
      const score = digest(`${name}\0${agent.url}`);
      if (score > bestScore) [best, bestScore] = [agent, score];
    }
    if (!best) throw new CsiError(status.UNAVAILABLE, 'the controller has no agents');
    if (best.state !== 'up') throw new CsiError(status.UNAVAILABLE, `the agent that keeps volume name ${name} is not reachable (${best.url})`);
    return best;
  }

  async get(name: string): Promise<NameRecord | null> {
    const text = await this.home(name).agent.kv.get(keyOf(name));
    if (text === null) return null;
    const stored = JSON.parse(text) as Stored;
    // Another name with the same digest is not this one's record.
    if (stored.name !== name) return null;
    return stored.ref ? { pending: false, ref: stored.ref } : { pending: true };
  }

  /** Before the create: a crash from here on leaves `pending`, which a retry settles by asking. */
  async pending(name: string): Promise<void> {
    await this.home(name).agent.kv.set(keyOf(name), JSON.stringify({ name } satisfies Stored));
  }

  async made(name: string, volume: Volume, hostId: string): Promise<void> {
    const ref: VolumeRef = { hostId, backend: volume.backend.name, volumeId: volume.id };
    await this.home(name).agent.kv.set(keyOf(name), JSON.stringify({ name, ref } satisfies Stored));
  }

  async forget(name: string): Promise<void> {
    await this.home(name).agent.kv.delete(keyOf(name));
  }
}
