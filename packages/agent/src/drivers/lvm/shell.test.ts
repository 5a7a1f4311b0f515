import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LvmShell } from './shell.js';

/**
 * A stand-in `lvm` that, before each command's own document, prints one without the shell's status
 * entry on the report channel, as a poller lvm2 forked from the shell does (forking one needs a merge,
 * so device-mapper: the real one runs in the kernel lane's thick revert).
 */
const STAND_IN = `#!/bin/bash
while IFS= read -r line; do
  printf '%s' '{"log":[{"log_context":"processing","log_type":"print","log_message":"Merged: 100.00%"}]}' >&3
  printf '%s\\n' "{\\"report\\":[{\\"lv\\":[{\\"lv_name\\":\\"\${line// /_}\\"}]}],\\"log\\":[{\\"log_context\\":\\"shell\\",\\"log_type\\":\\"status\\",\\"log_ret_code\\":\\"1\\"}]}" >&3
done
`;

describe('the lvm shell and documents that end no command', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kindling-shell-'));
    await writeFile(join(dir, 'lvm'), STAND_IN);
    await chmod(join(dir, 'lvm'), 0o755);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("answers each command with its own document, not a forked poller's printed before it", async () => {
    const shell = new LvmShell({ PATH: `${dir}:${process.env.PATH ?? ''}`, LVM_SYSTEM_DIR: dir }, () => Promise.reject(new Error('ran as a process')));
    try {
      const first = await shell.run(['lvs', 'vg/a']);
      const second = await shell.run(['lvs', 'vg/b']);
      expect(JSON.parse(first.stdout)).toEqual({ report: [{ lv: [{ lv_name: 'lvs_vg/a' }] }] });
      expect(JSON.parse(second.stdout)).toEqual({ report: [{ lv: [{ lv_name: 'lvs_vg/b' }] }] });
    } finally {
      shell.close();
    }
  });
});
