// Helpers for the kernel-lane scenarios: where the agent in the guest is, and a way to run commands inside
// the guest (data checks on an attached device or file). Set by scripts/kernel-lane/run.sh.

export interface KernelEnv {
  /** ws://127.0.0.1:PORT, the agent in the guest (for `Agent.connect(url, { token })`). */
  url: string;
  /** http://127.0.0.1:PORT, the same agent's HTTP side (/healthz, /readyz, /metrics, /v1/...). */
  httpUrl: string;
  token: string;
  /** http://127.0.0.1:PORT of the test-only exec helper in the guest. */
  execUrl: string;
}

export function kernelEnv(): KernelEnv {
  const url = process.env.KINDLING_KERNEL_URL;
  const token = process.env.KINDLING_KERNEL_TOKEN;
  if (!url || !token) {
    throw new Error('KINDLING_KERNEL_URL/KINDLING_KERNEL_TOKEN are not set: run these through scripts/kernel-lane/run.sh');
  }
  return {
    url,
    token,
    httpUrl: process.env.KINDLING_KERNEL_HTTP ?? url.replace(/^ws/, 'http'),
    execUrl: process.env.KINDLING_KERNEL_EXEC_URL ?? '',
  };
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** Runs argv inside the guest (as root). Does not throw on a non-zero exit: check `code`. */
export async function guestExec(
  argv: string[],
  opts: { stdin?: Buffer; timeoutMs?: number; encoding?: 'utf8' | 'base64' } = {},
): Promise<ExecResult> {
  const env = kernelEnv();
  if (!env.execUrl) throw new Error('KINDLING_KERNEL_EXEC_URL is not set');
  const res = await fetch(`${env.execUrl}/exec`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      argv,
      stdin: opts.stdin?.toString('base64'),
      timeoutMs: opts.timeoutMs,
      encoding: opts.encoding,
    }),
  });
  if (!res.ok) throw new Error(`guest exec ${argv.join(' ')}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as ExecResult;
}

/** Runs a shell command line inside the guest; returns stdout, throws with stderr on a non-zero exit. */
export async function guestSh(script: string, timeoutMs = 120_000): Promise<string> {
  const r = await guestExec(['/bin/sh', '-c', script], { timeoutMs });
  if (r.code !== 0) throw new Error(`guest: '${script}' exited ${r.code ?? r.signal}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** sha256 (hex) of `bytes` bytes at `offset` of a guest device or file, read with O_DIRECT for devices. */
export async function guestSha256(path: string, bytes = 4 << 20, offset = 0): Promise<string> {
  const mib = 1 << 20;
  if (bytes % mib || offset % mib) throw new Error('guestSha256 works in whole MiB');
  const direct = path.startsWith('/dev/') ? ' iflag=direct' : '';
  const out = await guestSh(
    `dd if='${path}' bs=1M skip=${offset / mib} count=${bytes / mib}${direct} status=none | sha256sum`,
  );
  return out.split(' ')[0] ?? '';
}

/** Writes `bytes` of a repeatable pseudo-random pattern (seeded) at `offset` of a guest device or file. */
export async function guestWritePattern(path: string, seed: string, bytes = 4 << 20, offset = 0): Promise<string> {
  const mib = 1 << 20;
  if (bytes % mib || offset % mib) throw new Error('guestWritePattern works in whole MiB');
  const direct = path.startsWith('/dev/') ? ' oflag=direct' : '';
  // the seed's text repeated: distinct per seed, no tool beyond coreutils needed in the guest
  await guestSh(
    `yes '${seed.replace(/'/g, '')}' | head -c ${bytes} | dd of='${path}' bs=1M seek=${offset / mib}${direct} conv=notrunc,fsync iflag=fullblock status=none`,
  );
  return guestSha256(path, bytes, offset);
}
