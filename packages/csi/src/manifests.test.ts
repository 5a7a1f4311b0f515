import { readFile, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_STATE_DIR, PLUGIN_NAME } from './plugin.js';

// deploy/kubernetes as Kubernetes reads it: every file listed, and the names the driver answers with.
const DIR = resolve(import.meta.dirname, '../../../deploy/kubernetes');

interface Doc {
  kind: string;
  metadata?: { name?: string };
  [key: string]: unknown;
}

async function load(): Promise<Map<string, Doc[]>> {
  const files = new Map<string, Doc[]>();
  for (const file of (await readdir(DIR)).filter((f) => f.endsWith('.yaml'))) {
    const docs = parseAllDocuments(await readFile(join(DIR, file), 'utf8'));
    for (const d of docs) expect(d.errors, file).toEqual([]);
    files.set(file, docs.map((d) => d.toJS() as Doc).filter(Boolean));
  }
  return files;
}

const containers = (doc: Doc) =>
  (doc as unknown as { spec: { template: { spec: { containers: { name: string; args?: string[] }[] } } } }).spec.template.spec.containers;

describe('deploy/kubernetes', () => {
  it('lists every manifest in the kustomization', async () => {
    const files = await load();
    const kustomization = files.get('kustomization.yaml')![0] as unknown as { resources: string[] };
    expect([...kustomization.resources].sort()).toEqual([...files.keys()].filter((f) => f !== 'kustomization.yaml').sort());
  });

  it('names the driver as it names itself, without attach and with capacity', async () => {
    const all = [...(await load()).values()].flat();
    const driver = all.find((d) => d.kind === 'CSIDriver')!;
    expect(driver.metadata?.name).toBe(PLUGIN_NAME);
    expect(driver['spec']).toMatchObject({ attachRequired: false, storageCapacity: true });
    for (const sc of all.filter((d) => d.kind === 'StorageClass')) {
      expect(sc).toMatchObject({ provisioner: PLUGIN_NAME, volumeBindingMode: 'WaitForFirstConsumer', allowVolumeExpansion: true });
      expect(Object.keys(sc['parameters'] as object)).toContain('backend');
    }
    expect(all.find((d) => d.kind === 'VolumeSnapshotClass')).toMatchObject({ driver: PLUGIN_NAME });
  });

  it('runs the standard sidecars next to the controller and node plugins', async () => {
    const all = [...(await load()).values()].flat();
    const controller = containers(all.find((d) => d.kind === 'Deployment')!);
    expect(controller.map((c) => c.name)).toEqual(['kindling-csi', 'csi-provisioner', 'csi-snapshotter', 'csi-resizer', 'liveness-probe']);
    expect(controller[0]!.args).toEqual(['--mode', 'controller', '--endpoint', 'unix:///csi/csi.sock']);
    expect(controller[1]!.args).toEqual(expect.arrayContaining(['--feature-gates=Topology=true', '--enable-capacity']));
    const node = containers(all.find((d) => d.kind === 'DaemonSet')!);
    expect(node.map((c) => c.name)).toEqual(['kindling-csi', 'node-driver-registrar', 'liveness-probe']);
    expect(node[1]!.args).toContain(`--kubelet-registration-path=/var/lib/kubelet/plugins/${PLUGIN_NAME}/csi.sock`);
  });

  it('keeps the node plugin’s qemu-storage-daemons alive across its restarts: host PID namespace, state under kubelet', async () => {
    const ds = [...(await load()).values()].flat().find((d) => d.kind === 'DaemonSet')!;
    const spec = (ds as unknown as { spec: { template: { spec: { hostPID?: boolean } } } }).spec.template.spec;
    expect(spec.hostPID).toBe(true);
    const plugin = containers(ds)[0] as unknown as { args: string[]; volumeMounts: { mountPath: string; mountPropagation?: string }[] };
    const stateDir = plugin.args.find((a) => a.startsWith('--state-dir='))?.slice('--state-dir='.length);
    expect(stateDir).toBe(DEFAULT_STATE_DIR);
    // A FUSE export made inside the container must show on the host and outlive the container.
    expect(plugin.volumeMounts.find((m) => stateDir!.startsWith(`${m.mountPath}/`))?.mountPropagation).toBe('Bidirectional');
  });
});
