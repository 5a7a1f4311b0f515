#!/usr/bin/env bash
# Installs what a bare Debian 12 machine lacks to build, run and test Kindling: lvm2 and qemu-utils
# (the drivers' commands), prometheus (for promtool), pnpm, and the workspace's packages. Quick when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v lvcreate >/dev/null 2>&1 || need+=(lvm2)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
command -v losetup >/dev/null 2>&1 || need+=(mount)
# The CSI node service formats, probes and grows filesystems.
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
command -v mkfs.xfs >/dev/null 2>&1 || need+=(xfsprogs)
command -v blkid >/dev/null 2>&1 || need+=(util-linux)
# qemu-storage-daemon: the CSI node serves a qcow2 volume as a raw file through its FUSE export.
command -v qemu-storage-daemon >/dev/null 2>&1 || need+=(qemu-system-common)
# sfdisk, for the CSI node test that stages a device holding only a partition table.
command -v sfdisk >/dev/null 2>&1 || need+=(fdisk)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# promtool, for the test that lints /metrics as `promtool check metrics` does (~95 MB installed).
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# systemd-analyze, for the test that verifies deploy/systemd/kindling-agent.service.
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing ${need[*]}; run as root or install them: apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v pnpm >/dev/null 2>&1 || [[ $(pnpm --version) != 12.* ]]; then
  echo "install-deps: installing pnpm 12" >&2
  npm install -g pnpm@12 >/dev/null
fi

pnpm install --frozen-lockfile --reporter=silent
