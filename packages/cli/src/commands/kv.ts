import { Command } from 'commander';
import { NotFoundError } from '@kindling/sdk';
import { act, type Runtime } from '../runtime.js';

export function kvCommand(runtime: Runtime): Command {
  const kv = new Command('kv').description("the agent's key-value store (cinderlib's KeyValue)");

  kv.command('get')
    .description('print a value (exit 3 when the key is not set)')
    .argument('<key>')
    .action(
      act(runtime, async (scope, [key]) => {
        const value = await scope.single('kv').agent.kv.get(key!);
        if (value === null) throw new NotFoundError(`key ${key} is not set`);
        scope.out.text(value, { key, value });
      }),
    );

  kv.command('set')
    .description('set a value')
    .argument('<key>')
    .argument('<value>')
    .action(
      act(runtime, async (scope, [key, value]) => {
        await scope.single('kv').agent.kv.set(key!, value!);
        scope.out.text(`${key} set`, { key, value });
      }),
    );

  kv.command('delete')
    .description('remove a key (exit 3 when it was not set)')
    .argument('<key>')
    .action(
      act(runtime, async (scope, [key]) => {
        const existed = await scope.single('kv').agent.kv.delete(key!);
        if (!existed) throw new NotFoundError(`key ${key} is not set`);
        scope.out.text(`${key} deleted`, { key, existed });
      }),
    );

  return kv;
}
