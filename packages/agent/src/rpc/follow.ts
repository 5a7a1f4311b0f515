import type { EventFrame, ParsedOpArgs, Progress } from '@kindling/protocol';

/** The volume (and its backend) a progress push is about: pushes of copies name only the resource copied to. */
export type ProgressVolume = (progress: Progress) => { volumeId: string; backend: string } | undefined;

/**
 * Which pushes one session wants (`events.follow`). By default every push, as before the op existed.
 * Narrowed, a session gets pushes only for volumes it names, volumes of backends it names, and (with
 * `replied`) volumes it has been sent in a reply or is creating: a controller holding ten volumes of
 * an agent with 100,000 hears about those ten. A snapshot's or connection's push is its volume's;
 * capacity pushes always go (placement reads them).
 */
export class Follow {
  /** Null: everything. */
  private volumeIds: Set<string> | null = null;
  private readonly backends = new Set<string>();
  private replied = false;

  constructor(private readonly volumeOf: ProgressVolume = () => undefined) {}

  /** No field: everything again. Otherwise adds to what is followed, so a long list can come in several calls. */
  set(args: ParsedOpArgs<'events.follow'>): { following: 'everything' | 'some' } {
    if (args.volumeIds === undefined && args.backends === undefined && args.replied === undefined) {
      this.volumeIds = null;
      this.backends.clear();
      this.replied = false;
      return { following: 'everything' };
    }
    this.volumeIds ??= new Set();
    for (const id of args.volumeIds ?? []) this.volumeIds.add(id);
    for (const name of args.backends ?? []) this.backends.add(name);
    if (args.replied !== undefined) this.replied = args.replied;
    return { following: 'some' };
  }

  wants(frame: EventFrame): boolean {
    if (this.volumeIds === null) return true;
    switch (frame.event) {
      case 'capacity':
        return true;
      case 'volume':
        return this.follows(frame.resource.id, frame.resource.backend);
      case 'snapshot':
      case 'connection':
      case 'connection.deleted':
        return this.follows(frame.resource.volumeId, frame.resource.backend);
      case 'progress': {
        const about = this.volumeOf(frame.resource);
        return about !== undefined && this.follows(about.volumeId, about.backend);
      }
    }
  }

  private follows(volumeId: string, backend: string | undefined): boolean {
    return this.volumeIds === null || this.volumeIds.has(volumeId) || (backend !== undefined && this.backends.has(backend));
  }

  /** A creating request of this session: the volume it makes is followed from its first push. */
  making(id: string): void {
    if (this.replied) this.volumeIds?.add(id);
  }

  /** The volumes a reply names (records, pages, attachments, changes) are followed from now on. */
  sent(result: unknown): void {
    if (!this.replied || this.volumeIds === null || typeof result !== 'object' || result === null) return;
    const r = result as Record<string, unknown>;
    const items = [r, r.volume, ...(Array.isArray(result) ? result : []), ...['volumes', 'snapshots', 'connections', 'changes'].flatMap((k) => (Array.isArray(r[k]) ? (r[k] as unknown[]) : []))];
    for (const item of items) {
      if (typeof item !== 'object' || item === null) continue;
      const { volumeId, id, kind, size } = item as Record<string, unknown>;
      if (typeof volumeId === 'string') this.volumeIds.add(volumeId);
      else if (typeof id === 'string' && (kind === 'volume' || typeof size === 'number')) this.volumeIds.add(id);
    }
  }
}
