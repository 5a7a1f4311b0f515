import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCsiServer, type CsiServer } from '../packages/csi/src/index.js';
import { TOPOLOGY_KEY } from '../packages/csi/src/plugin.js';
import { codeOf, csiClient, status, type CsiServiceClient } from '../packages/csi/src/testing/client.js';
import { requires } from '@kindling/agent/testing';
import { Agent } from '@kindling/sdk';
import { cleanUpHost, nodeUnavailable } from '../packages/csi/src/testing/host.js';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// The Node service on this host for real: loop devices over raw files of an NFS backend on a local
// folder, mkfs, mounts and binds, with the mount table as the only record of what is staged.
const TOKEN = 'csi-node-token-0123456789abcdef';
const GiB = 1024 ** 3;
const writer = { mode: 'SINGLE_NODE_WRITER' };
const ext4 = { mount: { fsType: 'ext4', mountFlags: [] }, accessMode: writer };
const xfs = { mount: { fsType: 'xfs', mountFlags: [] }, accessMode: writer };
const block = { block: {}, accessMode: writer };


let agent: AgentProcess;
let other: AgentProcess;
let server: CsiServer;
let dir: string;
let controller: CsiServiceClient;
let node: CsiServiceClient;
let identity: CsiServiceClient;
let sdk: Agent;
let count = 0;

const paths = async () => {
  const base = join(dir, `v${++count}`);
  await mkdir(join(base, 'pods'), { recursive: true });
  return { staging: join(base, 'staging'), target: join(base, 'pods', 'mount') };
};
const on = (host: string) => ({ accessibilityRequirements: { requisite: [{ segments: { [TOPOLOGY_KEY]: host } }] } });
/** A volume on this node's host (node-a) unless placed elsewhere. */
const volume = async (size = 1, placed: object = on('node-a')) =>
  (await controller.CreateVolume({ name: `pvc-node-${process.pid}-${++count}`, volumeCapabilities: [ext4], capacityRange: { requiredBytes: size * GiB }, ...placed })).volume;
const fileOf = (volumeId: string): string => join(agent.dir, 'share', `volume-${volumeId.split(':')[2]}`);
/** The loop devices over the file qemu-storage-daemon serves the volume as (the node's state folder). */
const loopsOfVolume = (volumeId: string): string => execFileSync('losetup', ['--associated', join(dir, 'state', `volume-${volumeId.split(':')[2]}`)], { encoding: 'utf8' });
/** What a full blkid probe sees in a volume's file (its signatures, whatever their kind). */
const probe = (volumeId: string): string => {
  try {
    return execFileSync('blkid', ['--probe', '--output', 'export', fileOf(volumeId)], { encoding: 'utf8' });
  } catch {
    return '';
  }
};
/** A GPT with one partition and nothing in it, as a VM disk or a Block volume carries. */
const writeGpt = (file: string): void => {
  execFileSync('sfdisk', ['--quiet', file], { input: 'label: gpt\n,,L\n' });
};
/** An LVM physical volume signature, made through a loop device with an lvm.conf that sees only it. */
const writePv = (file: string): void => {
  const loop = execFileSync('losetup', ['--find', '--show', file], { encoding: 'utf8' }).trim();
  const conf = mkdtempSync(join(dir, 'lvm-'));
  try {
    writeFileSync(join(conf, 'lvm.conf'), `devices { use_devicesfile = 0 obtain_device_list_from_udev = 0 filter = [ "a|^${loop}$|", "r|.*|" ] }\nbackup { backup = 0 archive = 0 }\n`);
    execFileSync('pvcreate', ['-y', loop], { env: { ...process.env, LVM_SYSTEM_DIR: conf, LVM_SUPPRESS_FD_WARNINGS: '1' }, stdio: 'ignore' });
  } finally {
    execFileSync('losetup', ['--detach', loop]);
  }
};
/** Whether the agent's index holds an attachment of the volume on its host (what makes it in-use). */
const attached = async (volumeId: string): Promise<boolean> => {
  const [found] = await (await sdk.backend('nfs')).volumesFiltered({ volumeId: volumeId.split(':')[2]! });
  return found!.connections.some((c) => c.attached);
};
const isMountPoint = (path: string): boolean => {
  try {
    execFileSync('mountpoint', ['-q', path]);
    return true;
  } catch {
    return false;
  }
};

requires('the CSI node tests (loop devices, mkfs, mount)', nodeUnavailable(), describe, describe.skip)('Node service on real loop devices and mounts', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kindling-csi-node-'));
    const raw = (d: string) => [{ name: 'nfs', driver: 'nfs', shares: [join(d, 'share')], format: 'raw' }];
    [agent, other] = await Promise.all([
      startAgentProcess({ token: TOKEN, config: { hostId: 'node-a' }, backends: raw }),
      startAgentProcess({ token: TOKEN, config: { hostId: 'node-b' }, backends: raw }),
    ]);
    server = await startCsiServer({ mode: 'all', endpoint: `unix://${join(dir, 'csi.sock')}`, agents: [agent.url, other.url], nodeAgent: agent.url, token: TOKEN, maxVolumesPerNode: 100, stateDir: join(dir, 'state') });
    controller = csiClient('Controller', server.address);
    node = csiClient('Node', server.address);
    identity = csiClient('Identity', server.address);
    sdk = await Agent.connect(agent.url, { token: TOKEN });
  });

  afterAll(async () => {
    for (const c of [controller, node, identity]) c?.close();
    await sdk?.close();
    await server?.close();
    if (dir) cleanUpHost(dir, [...[agent, other].filter(Boolean).map((a) => a.dir), join(dir, 'state')]);
    await Promise.all([agent, other].filter(Boolean).map((a) => a.dispose()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('NodeGetInfo names the agent host as node id and topology', async () => {
    expect(await node.NodeGetInfo({})).toEqual({ nodeId: 'node-a', maxVolumesPerNode: 100, accessibleTopology: { segments: { [TOPOLOGY_KEY]: 'node-a' } } });
    const caps = (await node.NodeGetCapabilities({})).capabilities.map((c: { rpc: { type: string } }) => c.rpc.type);
    expect(caps.sort()).toEqual(['EXPAND_VOLUME', 'GET_VOLUME_STATS', 'STAGE_UNSTAGE_VOLUME', 'VOLUME_CONDITION']);
    expect((await identity.GetPluginCapabilities({})).capabilities.map((c: { service?: { type: string } }) => c.service?.type)).toContain('CONTROLLER_SERVICE');
  });

  it('refuses missing arguments with INVALID_ARGUMENT and unknown volumes with NOT_FOUND', async () => {
    const vol = await volume();
    const { staging, target } = await paths();
    const id = vol.volumeId;
    expect(await codeOf(node.NodeStageVolume({ stagingTargetPath: staging, volumeCapability: ext4 }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node.NodeStageVolume({ volumeId: id, volumeCapability: ext4 }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node.NodeStageVolume({ volumeId: id, stagingTargetPath: staging }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node.NodeStageVolume({ volumeId: id, stagingTargetPath: staging, volumeCapability: { ...ext4, accessMode: { mode: 'MULTI_NODE_MULTI_WRITER' } } }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node.NodeUnstageVolume({ volumeId: id }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node.NodeUnstageVolume({ stagingTargetPath: staging }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node.NodePublishVolume({ volumeId: id, stagingTargetPath: staging, volumeCapability: ext4 }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node.NodePublishVolume({ volumeId: id, targetPath: target, volumeCapability: ext4 }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node.NodePublishVolume({ volumeId: id, stagingTargetPath: staging, targetPath: target }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node.NodeUnpublishVolume({ volumeId: id }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node.NodeUnpublishVolume({ targetPath: target }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node.NodeGetVolumeStats({ volumeId: id }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node.NodeExpandVolume({ volumeId: id }))).toBe(status.INVALID_ARGUMENT);
    const unknown = 'node-a:nfs:00000000-0000-4000-8000-000000000000';
    expect(await codeOf(node.NodeStageVolume({ volumeId: unknown, stagingTargetPath: staging, volumeCapability: ext4 }))).toBe(status.NOT_FOUND);
    expect(await codeOf(node.NodePublishVolume({ volumeId: unknown, stagingTargetPath: staging, targetPath: target, volumeCapability: ext4 }))).toBe(status.NOT_FOUND);
    // Volumes are pinned to their host: node-b's volume is not on this node.
    const elsewhere = await volume(1, on('node-b'));
    expect(await codeOf(node.NodeStageVolume({ volumeId: elsewhere.volumeId, stagingTargetPath: staging, volumeCapability: ext4 }))).toBe(status.NOT_FOUND);
    // Publishing what is not staged is refused.
    expect(await codeOf(node.NodePublishVolume({ volumeId: id, stagingTargetPath: staging, targetPath: target, volumeCapability: ext4 }))).toBe(status.FAILED_PRECONDITION);
  });

  it('NodeGetVolumeStats is NOT_FOUND when the volume is not at the path', async () => {
    const vol = await volume();
    const { target } = await paths();
    expect(await codeOf(node.NodeGetVolumeStats({ volumeId: vol.volumeId, volumePath: target }))).toBe(status.NOT_FOUND);
    await mkdir(target);
    expect(await codeOf(node.NodeGetVolumeStats({ volumeId: vol.volumeId, volumePath: target }))).toBe(status.NOT_FOUND);
    expect(await codeOf(node.NodeGetVolumeStats({ volumeId: 'node-a:nfs:00000000-0000-4000-8000-000000000000', volumePath: target }))).toBe(status.NOT_FOUND);
  });

  it('stages ext4 once, publishes idempotently, keeps data across unstage and re-stage, and removes the target', async () => {
    const vol = await volume();
    const { staging, target } = await paths();
    const stage = { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: ext4 };
    const publish = { ...stage, targetPath: target };
    await node.NodeStageVolume(stage);
    await node.NodeStageVolume(stage);
    expect(loopsOfVolume(vol.volumeId)).toMatch(/^\/dev\/loop\d+:/);
    await node.NodePublishVolume(publish);
    await node.NodePublishVolume(publish);
    await writeFile(join(target, 'hello.txt'), 'kept through unstage');
    const stats = await node.NodeGetVolumeStats({ volumeId: vol.volumeId, volumePath: target });
    const bytes = stats.usage.find((u: { unit: string }) => u.unit === 'BYTES');
    const inodes = stats.usage.find((u: { unit: string }) => u.unit === 'INODES');
    expect(bytes.total).toBeGreaterThan(0.9 * GiB);
    expect(bytes.total).toBeLessThanOrEqual(GiB);
    expect(bytes.used).toBeGreaterThan(0);
    expect(inodes.total).toBeGreaterThan(inodes.available);
    // Unstaging under a publish would pull the filesystem from under the pod.
    expect(await codeOf(node.NodeUnstageVolume(stage))).toBe(status.FAILED_PRECONDITION);
    await node.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: target });
    expect(existsSync(target)).toBe(false);
    await node.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: target });
    await node.NodeUnstageVolume(stage);
    await node.NodeUnstageVolume(stage);
    expect(isMountPoint(staging)).toBe(false);
    expect(loopsOfVolume(vol.volumeId)).toBe('');
    await node.NodeStageVolume(stage);
    await node.NodePublishVolume(publish);
    expect(await readFile(join(target, 'hello.txt'), 'utf8')).toBe('kept through unstage');
    await node.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: target });
    await node.NodeUnstageVolume(stage);
    await controller.DeleteVolume({ volumeId: vol.volumeId });
  });

  it('finds its mounts when the CO spells the paths another way (a doubled slash, a symlinked parent)', async () => {
    const vol = await volume();
    const { staging, target } = await paths();
    const linked = join(dir, `link${++count}`);
    await symlink(join(target, '..'), linked);
    const odd = { staging: staging.replace(/\/staging$/, '//staging'), target: join(linked, 'mount') };
    const stage = { volumeId: vol.volumeId, stagingTargetPath: odd.staging, volumeCapability: ext4 };
    await node.NodeStageVolume(stage);
    await node.NodeStageVolume({ ...stage, stagingTargetPath: staging });
    await node.NodePublishVolume({ ...stage, targetPath: odd.target });
    await node.NodePublishVolume({ ...stage, stagingTargetPath: staging, targetPath: target });
    // One stage and one publish, not a mount stacked per spelling.
    expect(execFileSync('findmnt', ['-n', '-o', 'TARGET', '--source', loopsOfVolume(vol.volumeId).split(':')[0] ?? ''], { encoding: 'utf8' }).trim().split('\n').sort()).toEqual([target, staging].sort());
    expect((await node.NodeGetVolumeStats({ volumeId: vol.volumeId, volumePath: odd.target })).usage).toHaveLength(2);
    await node.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: odd.target });
    expect(existsSync(target)).toBe(false);
    await node.NodeUnstageVolume(stage);
    expect(isMountPoint(staging)).toBe(false);
    expect(loopsOfVolume(vol.volumeId)).toBe('');
  });

  it("leaves another volume's mounts alone, and undoes a stage that attached but never mounted", async () => {
    const [mine, theirs] = [await volume(), await volume()];
    const { staging, target } = await paths();
    await node.NodeStageVolume({ volumeId: theirs.volumeId, stagingTargetPath: staging, volumeCapability: ext4 });
    await node.NodePublishVolume({ volumeId: theirs.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: ext4 });
    await writeFile(join(target, 'theirs'), 'still here');
    // A CO that names the wrong volume for these paths gets OK (this volume is not there) and unmounts nothing.
    await node.NodeUnpublishVolume({ volumeId: mine.volumeId, targetPath: target });
    await node.NodeUnstageVolume({ volumeId: mine.volumeId, stagingTargetPath: staging });
    expect(await readFile(join(target, 'theirs'), 'utf8')).toBe('still here');
    expect(loopsOfVolume(theirs.volumeId)).toMatch(/^\/dev\/loop\d+:/);
    // Staging onto a path that holds another volume is refused.
    expect(await codeOf(node.NodeStageVolume({ volumeId: mine.volumeId, stagingTargetPath: staging, volumeCapability: ext4 }))).toBe(status.ALREADY_EXISTS);
    // That refusal came after the attach, which it undid.
    expect(loopsOfVolume(mine.volumeId)).toBe('');
    expect(await attached(mine.volumeId)).toBe(false);
    // An attach left by a plugin that stopped mid-stage (as a crash would) is undone by unstage.
    const [left] = await (await sdk.backend('nfs')).volumesFiltered({ volumeId: mine.volumeId.split(':')[2]! });
    await left!.attach();
    await node.NodeUnstageVolume({ volumeId: mine.volumeId, stagingTargetPath: (await paths()).staging });
    expect(await attached(mine.volumeId)).toBe(false);
    await node.NodeUnpublishVolume({ volumeId: theirs.volumeId, targetPath: target });
    await node.NodeUnstageVolume({ volumeId: theirs.volumeId, stagingTargetPath: staging });
    expect(loopsOfVolume(theirs.volumeId)).toBe('');
    for (const v of [mine, theirs]) await controller.DeleteVolume({ volumeId: v.volumeId });
  });

  it('publishes read-only when asked', async () => {
    const vol = await volume();
    const { staging, target } = await paths();
    await node.NodeStageVolume({ volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: xfs });
    expect(execFileSync('findmnt', ['-n', '-o', 'FSTYPE', staging], { encoding: 'utf8' }).trim()).toBe('xfs');
    await node.NodePublishVolume({ volumeId: vol.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: xfs, readonly: true });
    await expect(writeFile(join(target, 'nope'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    await writeFile(join(staging, 'yes'), 'the staging mount stays writable');
    expect(await readFile(join(target, 'yes'), 'utf8')).toBe('the staging mount stays writable');
    await node.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: target });
    await node.NodeUnstageVolume({ volumeId: vol.volumeId, stagingTargetPath: staging });
  });

  it('refuses to publish at a target that holds the volume with the other readonly setting', async () => {
    const vol = await volume();
    const { staging, target } = await paths();
    const stage = { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: ext4 };
    await node.NodeStageVolume(stage);
    await node.NodePublishVolume({ ...stage, targetPath: target });
    expect(await codeOf(node.NodePublishVolume({ ...stage, targetPath: target, readonly: true }))).toBe(status.ALREADY_EXISTS);
    await node.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: target });
    await node.NodePublishVolume({ ...stage, targetPath: target, readonly: true });
    await node.NodePublishVolume({ ...stage, targetPath: target, readonly: true });
    expect(await codeOf(node.NodePublishVolume({ ...stage, targetPath: target }))).toBe(status.ALREADY_EXISTS);
    await expect(writeFile(join(target, 'nope'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    await node.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: target });
    await node.NodeUnstageVolume(stage);
  });

  it('never formats a device that holds a filesystem, and refuses another one than asked', async () => {
    const vol = await volume();
    const { staging } = await paths();
    const stage = { volumeId: vol.volumeId, stagingTargetPath: staging };
    await node.NodeStageVolume({ ...stage, volumeCapability: ext4 });
    await writeFile(join(staging, 'data'), 'precious');
    await node.NodeUnstageVolume(stage);
    expect(await codeOf(node.NodeStageVolume({ ...stage, volumeCapability: xfs }))).toBe(status.FAILED_PRECONDITION);
    await node.NodeUnstageVolume(stage);
    await node.NodeStageVolume({ ...stage, volumeCapability: { ...ext4, mount: { fsType: '', mountFlags: [] } } });
    expect(await readFile(join(staging, 'data'), 'utf8')).toBe('precious');
    await node.NodeUnstageVolume(stage);
  });

  it.for([
    ['a partition table', 'PTTYPE=gpt', writeGpt],
    ['an LVM physical volume', 'TYPE=LVM2_member', writePv],
  ] as const)('never formats a device that holds %s, and leaves it detached', async ([, signature, write]) => {
    const vol = await volume();
    write(fileOf(vol.volumeId));
    const { staging } = await paths();
    const err = await node.NodeStageVolume({ volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: ext4 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: status.FAILED_PRECONDITION });
    expect((err as { details: string }).details).toMatch(signature.split('=')[1]!);
    expect(probe(vol.volumeId)).toContain(signature);
    expect(probe(vol.volumeId)).not.toContain('TYPE=ext4');
    // A final error is never followed by NodeUnstage: the stage undid its own attach.
    expect(loopsOfVolume(vol.volumeId)).toBe('');
    expect(await attached(vol.volumeId)).toBe(false);
    await controller.DeleteVolume({ volumeId: vol.volumeId });
  });

  it('undoes the attach when mkfs or the mount fails', async () => {
    const vol = await volume();
    const { staging } = await paths();
    // An option ext4 does not know makes the mount fail after the attach and the mkfs.
    const bad = { ...ext4, mount: { fsType: 'ext4', mountFlags: ['no_such_option_here'] } };
    expect(await codeOf(node.NodeStageVolume({ volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: bad }))).not.toBe('ok');
    expect(isMountPoint(staging)).toBe(false);
    expect(loopsOfVolume(vol.volumeId)).toBe('');
    expect(await attached(vol.volumeId)).toBe(false);
    await controller.DeleteVolume({ volumeId: vol.volumeId });
  });

  it('attaches again a recorded attachment whose file is gone, refusing clearly while it stays gone', async () => {
    const vol = await volume();
    const { staging } = await paths();
    const file = fileOf(vol.volumeId);
    // The agent's index holds an attachment (an earlier stage, a crash) whose path is not there now.
    const [recorded] = await (await sdk.backend('nfs')).volumesFiltered({ volumeId: vol.volumeId.split(':')[2]! });
    await recorded!.attach();
    await rename(file, `${file}.away`);
    const err = await node.NodeStageVolume({ volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: ext4 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: status.FAILED_PRECONDITION });
    expect((err as { details: string }).details).toContain(file);
    expect(await attached(vol.volumeId)).toBe(false);
    await rename(`${file}.away`, file);
    await recorded!.attach();
    await node.NodeStageVolume({ volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: ext4 });
    expect(isMountPoint(staging)).toBe(true);
    await node.NodeUnstageVolume({ volumeId: vol.volumeId, stagingTargetPath: staging });
    expect(await attached(vol.volumeId)).toBe(false);
    await controller.DeleteVolume({ volumeId: vol.volumeId });
  });

  it('reports the volume abnormal once its file was deleted under the daemon serving it', async () => {
    const vol = await volume();
    const { staging, target } = await paths();
    const stage = { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: ext4 };
    await node.NodeStageVolume(stage);
    await node.NodePublishVolume({ ...stage, targetPath: target });
    expect((await node.NodeGetVolumeStats({ volumeId: vol.volumeId, volumePath: target })).volumeCondition).toEqual({ abnormal: false, message: '' });
    await rm(fileOf(vol.volumeId));
    const { volumeCondition } = await node.NodeGetVolumeStats({ volumeId: vol.volumeId, volumePath: target });
    expect(volumeCondition).toMatchObject({ abnormal: true, message: `the image ${fileOf(vol.volumeId)} of volume ${vol.volumeId.split(':')[2]} is gone: qemu-storage-daemon writes to a deleted file` });
    await node.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: target });
    await node.NodeUnstageVolume(stage);
    expect(loopsOfVolume(vol.volumeId)).toBe('');
  });

  it('stages and publishes a block volume as the device itself', async () => {
    const vol = await volume();
    const { staging, target } = await paths();
    await node.NodeStageVolume({ volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: block });
    await node.NodeStageVolume({ volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: block });
    await node.NodePublishVolume({ volumeId: vol.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: block });
    expect((await stat(target)).isBlockDevice()).toBe(true);
    expect(execFileSync('blockdev', ['--getsize64', target], { encoding: 'utf8' }).trim()).toBe(String(GiB));
    const stats = await node.NodeGetVolumeStats({ volumeId: vol.volumeId, volumePath: target });
    expect(stats.usage[0]).toMatchObject({ unit: 'BYTES', total: GiB });
    await node.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: target });
    expect(existsSync(target)).toBe(false);
    await node.NodeUnstageVolume({ volumeId: vol.volumeId, stagingTargetPath: staging });
    expect(existsSync(join(staging, 'block'))).toBe(false);
    expect(loopsOfVolume(vol.volumeId)).toBe('');
  });

  // Growing ext4 online takes CAP_SYS_RESOURCE (resize2fs's ioctl), which this sandbox lacks: xfs here.
  it.for([['xfs', xfs]] as const)('grows a mounted %s filesystem online after the controller grew the volume', async ([fs, cap]) => {
    const vol = await volume();
    const { staging, target } = await paths();
    await node.NodeStageVolume({ volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: cap });
    await node.NodePublishVolume({ volumeId: vol.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: cap });
    await writeFile(join(target, 'before'), fs);
    const grown = await controller.ControllerExpandVolume({ volumeId: vol.volumeId, capacityRange: { requiredBytes: 2 * GiB }, volumeCapability: cap });
    expect(grown.nodeExpansionRequired).toBe(true);
    const reply = await node.NodeExpandVolume({ volumeId: vol.volumeId, volumePath: target, stagingTargetPath: staging, capacityRange: { requiredBytes: 2 * GiB }, volumeCapability: cap });
    expect(reply.capacityBytes).toBe(2 * GiB);
    const bytes = (await node.NodeGetVolumeStats({ volumeId: vol.volumeId, volumePath: target })).usage.find((u: { unit: string }) => u.unit === 'BYTES');
    expect(bytes.total).toBeGreaterThan(1.8 * GiB);
    expect(await readFile(join(target, 'before'), 'utf8')).toBe(fs);
    await node.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: target });
    await node.NodeUnstageVolume({ volumeId: vol.volumeId, stagingTargetPath: staging });
  });
});
