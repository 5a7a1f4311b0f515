import type { Runner } from '../../exec/run.js';

// Both write a file the agent already made (safe-file.ts): neither creates one.

/** A sparse raw file: no blocks allocated until written (cinder's _create_sparsed_file). */
export async function createSparse(run: Runner, target: string, sizeGb: number): Promise<void> {
  await run(['truncate', '--no-create', '-s', `${sizeGb}G`, target]);
}

/**
 * A fully allocated raw file (cinder's _create_regular_file writes zeros with dd; fallocate reserves
 * the same space without writing it).
 */
export async function createAllocated(run: Runner, target: string, sizeGb: number): Promise<void> {
  await run(['fallocate', '-l', `${sizeGb}G`, target]);
}
