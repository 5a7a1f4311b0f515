/** The driver's name as Kubernetes knows it (CSIDriver object, StorageClass provisioner). */
export const PLUGIN_NAME = 'csi.kindling.io';
export const PLUGIN_VERSION = '0.1.0';
/** The CSI specification the schema was written from. */
export const CSI_SPEC_VERSION = '1.10.0';
/** The topology segment naming the agent's host id (the agent's hostId, settable to the node name). */
export const TOPOLOGY_KEY = 'topology.csi.kindling.io/host';
/** Metadata that marks a Kindling volume as made by this driver, with the CSI name it was made for. */
export const CSI_NAME_KEY = 'csi.kindling.io/name';
/** The node's own folder: inside the one kubelet gives the driver, so it outlives the plugin's container. */
export const DEFAULT_STATE_DIR = `/var/lib/kubelet/plugins/${PLUGIN_NAME}/node`;
