import { stat } from 'node:fs/promises';
import { BackendError, GIB, noRoomError, roomFor, roomGbFromBytes } from '@kindling/protocol';
import type { NfsBackendConfig } from '../../config.js';
import type { Provisioned } from './provisioned.js';
import { isMounted, isRemoteShare, shareDir, shareSpace } from './shares.js';

export const toGb = (bytes: number): number => Math.round((bytes / GIB) * 100) / 100;

interface Figures {
  totalBytes: number;
  freeBytes: number;
  provisionedBytes: number;
  /** GiB of the largest volume one share takes: a volume never spans shares. */
  maxVolumeSizeGb: number;
}

/** Which shares are usable, how much room each has, and which one a new volume goes to (cinder's _find_share). */
export class Capacity {
  constructor(
    private readonly config: NfsBackendConfig,
    private readonly mountInfoPath: string,
    readonly provisioned: Provisioned,
  ) {}

  get thin(): boolean {
    return this.config.sparse || this.config.format === 'qcow2';
  }

  dirOf(share: string): string {
    return shareDir(this.config.mountPointBase, share);
  }

  /** Shares usable now: local folders that exist, remote shares that are mounted. */
  async usableShares(): Promise<string[]> {
    const usable: string[] = [];
    for (const share of this.config.shares) {
      const ok = isRemoteShare(share)
        ? await isMounted(this.dirOf(share), this.mountInfoPath)
        : await stat(share).then((s) => s.isDirectory(), () => false);
      if (ok) usable.push(share);
    }
    return usable;
  }

  /** Space read live from every usable share; provisioned bytes from the count (read again with `recount`). */
  async figures(recount: boolean): Promise<Figures> {
    const provisionedBytes = await this.provisioned.bytes(undefined, recount);
    let totalBytes = 0;
    let freeBytes = 0;
    let mostRoom = 0;
    for (const share of await this.usableShares()) {
      const space = await shareSpace(this.dirOf(share));
      totalBytes += space.totalBytes;
      freeBytes += space.freeBytes;
      mostRoom = Math.max(mostRoom, await this.room(share));
    }
    return { totalBytes, freeBytes, provisionedBytes, maxVolumeSizeGb: roomGbFromBytes(mostRoom) };
  }

  /** Bytes one new volume may take on the share, by the capacity rule. */
  private async room(share: string): Promise<number> {
    const space = await shareSpace(this.dirOf(share));
    return roomFor({
      total: space.totalBytes,
      free: space.freeBytes,
      provisioned: await this.provisioned.bytes(share),
      thin: this.thin,
      maxOverSubscriptionRatio: this.config.maxOverSubscriptionRatio,
      reservedPercentage: this.config.reservedPercentage,
    });
  }

  /** Among shares with room, the one with the least provisioned. */
  async chooseShare(sizeGb: number): Promise<string> {
    const shares = await this.usableShares();
    if (shares.length === 0) {
      throw new BackendError(`no share of backend ${this.config.name} is mounted`, { shares: this.config.shares });
    }
    let best: { share: string; provisioned: number } | null = null;
    let most = 0;
    for (const share of shares) {
      const room = await this.room(share);
      most = Math.max(most, room);
      const provisioned = await this.provisioned.bytes(share);
      if (room >= sizeGb * GIB && (best === null || provisioned < best.provisioned)) best = { share, provisioned };
    }
    if (best === null) {
      throw noRoomError(`no share of backend ${this.config.name} has room for ${sizeGb} GiB`, sizeGb * GIB, most);
    }
    return best.share;
  }

  /** cinder's extend check: the share must have room for the growth. */
  async checkRoom(share: string, addGb: number): Promise<void> {
    if (addGb <= 0) return;
    const room = await this.room(share);
    if (room < addGb * GIB) {
      throw noRoomError(`share ${share} of backend ${this.config.name} has no room for ${addGb} GiB more`, addGb * GIB, room);
    }
  }
}
