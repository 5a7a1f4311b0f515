import type { Runner } from '../../exec/run.js';

/** A sparse raw file: no blocks allocated until written (cinder's _create_sparsed_file). */
export async function createSparse(run: Runner, path: string, sizeGb: number): Promise<void> {
  await run(['truncate', '-s', `${sizeGb}G`, path]);
}

/**
 * A fully allocated raw file (cinder's _create_regular_file writes zeros with dd; fallocate reserves
 * the same space without writing it).
 */
export async function createAllocated(run: Runner, path: string, sizeGb: number): Promise<void> {
  await run(['fallocate', '-l', `${sizeGb}G`, path]);
}
