#!/usr/bin/env bash
# Installs what the real-kernel lane needs on the host, from Debian's packages.
# Idempotent: when every tool is present it returns at once; `apt-get update` runs only when something is missing.
set -euo pipefail

# command -> Debian package that provides it
declare -A NEED=(
  [qemu-system-x86_64]=qemu-system-x86
  [qemu-img]=qemu-utils
  [mmdebstrap]=mmdebstrap
  [mkfs.ext4]=e2fsprogs
  [cpio]=cpio
  [sha256sum]=coreutils
  [modprobe]=kmod
  [curl]=curl
)
# files (not commands) the lane relies on -> package
declare -A NEED_FILES=(
  [/usr/share/qemu/linuxboot_dma.bin]=qemu-system-data
  [/usr/share/seabios/bios-256k.bin]=seabios
  [/usr/share/keyrings/debian-archive-keyring.gpg]=debian-archive-keyring
)

missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
for f in "${!NEED_FILES[@]}"; do
  [[ -e "$f" ]] || missing+=("${NEED_FILES[$f]}")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
  echo "kernel-lane: missing packages (${missing[*]}) and not root: install them with apt-get" >&2
  exit 1
fi

mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "kernel-lane: installing ${pkgs[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
echo "kernel-lane: installed ${pkgs[*]}" >&2
