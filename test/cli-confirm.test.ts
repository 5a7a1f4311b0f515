import { afterAll, beforeAll, expect, it } from 'vitest';
import { main } from '../packages/cli/src/main.js';
import type { Runtime } from '../packages/cli/src/runtime.js';
import { StandInAgent } from '../packages/sdk/src/testing/stand-in-agent.js';

// On a terminal, a destructive command asks first: the CLI's main with a terminal that answers as told.
const TOKEN = 'cli-confirm-token-0123456789';
let standIn: StandInAgent;

beforeAll(async () => {
  standIn = await StandInAgent.start({ token: TOKEN });
});
afterAll(async () => {
  await standIn?.stop();
});

async function onTerminal(argv: string[], answer: string): Promise<{ code: number; stdout: string; stderr: string; asked: string[] }> {
  let stdout = '';
  let stderr = '';
  const asked: string[] = [];
  const runtime: Runtime = {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    stderrIsTTY: false,
    stdinIsTTY: true,
    ask: async (question) => {
      asked.push(question);
      return answer;
    },
    environment: { env: { KINDLING_URL: standIn.url, KINDLING_TOKEN: TOKEN }, cwd: '/', home: '/nonexistent' },
    exitCode: 0,
  };
  const code = await main(argv, runtime);
  return { code, stdout, stderr, asked };
}

it('asks on a terminal before deleting, names what and where, and changes nothing unless the answer is yes', async () => {
  const volume = standIn.newVolume({ backend: 'lvm', size: 1, name: 'precious' });
  const declined = await onTerminal(['volume', 'delete', 'precious'], 'n');
  expect(declined).toEqual({
    code: 2,
    stdout: '',
    stderr: 'error: INVALID_ARGUMENT: not confirmed: nothing was changed\n',
    asked: [`delete volume ${volume.id} (precious) on ${standIn.url}? [y/N] `],
  });
  expect(standIn.volumes.has(volume.id)).toBe(true);
  expect(standIn.requests.filter((r) => r.op === 'volume.delete')).toEqual([]);

  const confirmed = await onTerminal(['volume', 'delete', 'precious'], 'y');
  expect(confirmed).toMatchObject({ code: 0, stdout: `volume ${volume.id} deleted\n`, stderr: '' });
  expect(standIn.volumes.has(volume.id)).toBe(false);

  // --yes: nothing asked.
  const other = standIn.newVolume({ backend: 'lvm', size: 1, name: 'scratch' });
  expect(await onTerminal(['volume', 'delete', 'scratch', '--yes'], 'n')).toMatchObject({ code: 0, asked: [] });
  expect(standIn.volumes.has(other.id)).toBe(false);
});
