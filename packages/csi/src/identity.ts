import { CSI_SPEC_VERSION, PLUGIN_NAME, PLUGIN_VERSION } from './plugin.js';

export type Mode = 'controller' | 'node' | 'all';

/** The CSI Identity service; `ready`: whether any running service can work (the node always can, from its mount table). */
export class Identity {
  constructor(
    private readonly mode: Mode,
    private readonly ready: () => Promise<boolean>,
  ) {}

  getPluginInfo() {
    return { name: PLUGIN_NAME, vendorVersion: PLUGIN_VERSION, manifest: { csiSpec: CSI_SPEC_VERSION } };
  }

  getPluginCapabilities() {
    const services = this.mode === 'node' ? [] : ['CONTROLLER_SERVICE', 'GROUP_CONTROLLER_SERVICE'];
    return {
      capabilities: [
        ...[...services, 'VOLUME_ACCESSIBILITY_CONSTRAINTS'].map((type) => ({ service: { type } })),
        // Filesystems grow mounted (resize2fs, xfs_growfs) and volumes grow attached.
        { volumeExpansion: { type: 'ONLINE' } },
      ],
    };
  }

  async probe() {
    return { ready: { value: await this.ready() } };
  }
}
