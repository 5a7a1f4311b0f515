// tsc writes every file 0644; the bins a package.json names must be executable, both for the link
// docs/operations.md installs (`ln -s .../dist/bin.js /usr/bin/kindling-agent`) and in packed tarballs.
// Usage: node bin-mode.mjs <package dir>...
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

for (const dir of process.argv.slice(2)) {
  const { bin } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const files = typeof bin === 'string' ? [bin] : Object.values(bin ?? {});
  for (const file of files) chmodSync(join(dir, file), 0o755);
}
