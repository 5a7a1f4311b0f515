import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '@kindling/sdk';
import { requires } from '@kindling/agent/testing';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { createNetnsHosts, freePort, launchAgent, netnsUnavailable, type NetnsHost } from './support/netns.js';

// A source agent on another host that listens on every interface (0.0.0.0): the target must pull from
// an address that reaches it, not from the wildcard (which, dialled on the target's host, is the target's own).
const maybe = requires('copying from an agent in its own network namespace', netnsUnavailable(), describe, describe.skip);
const TOKEN = 'move-netns-test-token-0123456789';

maybe('a copy from an agent listening on every interface', () => {
  let destroy: (() => Promise<void>) | undefined;
  let host: NetnsHost;
  let source: AgentProcess;
  let target: AgentProcess;
  let port: number;

  beforeAll(async () => {
    const made = await createNetnsHosts(1);
    destroy = made.destroy;
    host = made.hosts[0]!;
    // Free here too, so nothing on this host answers the wildcard's port in the source's stead.
    port = await freePort();
    [source, target] = await Promise.all([launchAgent({ host: '0.0.0.0', port, token: TOKEN, netns: host.netns }), startAgentProcess()]);
  });
  afterAll(async () => {
    await Promise.all([source?.dispose(), target?.dispose()]);
    await destroy?.();
  });

  it('is pulled from the address the client reached the source at', async () => {
    const from = await Agent.connect(`ws://${host.address}:${port}/rpc`, { token: TOKEN });
    const to = await Agent.connect(target.url);
    try {
      const vol = await (await from.backend('nfs')).createVolume({ size: 1, name: 'wildcard-source' });
      const copy = await vol.clone({ backend: await to.backend('nfs') });
      expect({ status: copy.status, size: copy.size, agent: copy.backend.agent.url }).toEqual({ status: 'available', size: 1, agent: target.url });
    } finally {
      await Promise.all([from.close(), to.close()]);
    }
  });
});
