import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { UnauthorizedError } from '@kindling/protocol';

/** What one transfer credential reads: one volume's content, or one snapshot's. */
export type TransferSource = { kind: 'volume'; volumeId: string } | { kind: 'snapshot'; volumeId: string; snapshotId: string };

/** How long a credential stays usable: long enough for a client to hand it to the target agent. */
export const TRANSFER_TTL_MS = 5 * 60 * 1000;

const digest = (credential: string): Buffer => createHash('sha256').update(credential).digest();

/**
 * The source agent's open transfer credentials: 256 random bits each, scoped to one resource and one
 * read, gone once used or expired, and kept only in memory (only their digests), so an agent restart
 * ends every one of them. Never a general token: the route they open serves that one read and nothing else.
 */
export class Tickets {
  readonly #open = new Map<string, { digest: Buffer; source: TransferSource; expires: number }>();

  constructor(private readonly clock: () => number = Date.now) {}

  mint(source: TransferSource, ttlMs: number = TRANSFER_TTL_MS): { id: string; credential: string; expires: number } {
    this.sweep();
    const id = randomUUID();
    const credential = randomBytes(32).toString('base64url');
    const expires = this.clock() + ttlMs;
    this.#open.set(id, { digest: digest(credential), source, expires });
    return { id, credential, expires };
  }

  /** The source the credential reads, once: a second use, an expired, wrong or unknown one is refused alike. */
  take(id: string, credential: string): TransferSource {
    this.sweep();
    const ticket = this.#open.get(id);
    if (!ticket || !timingSafeEqual(ticket.digest, digest(credential))) {
      throw new UnauthorizedError(`transfer ${id}: the credential is used, expired or was never issued`, { transferId: id });
    }
    this.#open.delete(id);
    return ticket.source;
  }

  private sweep(): void {
    const now = this.clock();
    for (const [id, ticket] of this.#open) if (ticket.expires <= now) this.#open.delete(id);
  }
}
