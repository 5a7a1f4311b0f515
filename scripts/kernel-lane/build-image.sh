#!/usr/bin/env bash
# Builds (or reuses) the real-kernel lane's guest image from Debian's packages, through this machine's own
# apt sources (bookworm, bookworm-updates, bookworm-security; nothing is downloaded from anywhere else).
#
# Output: .cache/kernel-lane/img-<key>/ with
#   vmlinuz      the kernel of linux-image-cloud-amd64
#   initrd.img   a tiny busybox initrd that loads virtio_blk, mounts the root disk and switches to it
#   root.img     raw ext4 root filesystem (1 GiB, sparse): minbase bookworm + lvm2, thin tools, NFS, qemu-utils,
#                e2fsprogs and xfsprogs (the CSI node plugin's mkfs and online grow)
#   kver         the kernel version
# <key> hashes this script and the package list (both define the image), so a second run reuses it.
# Nothing of Kindling and no Node binary is baked in: run.sh passes those on a payload disk per run.
#
# Prints the image folder on stdout (the only thing it prints there).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${KINDLING_KERNEL_CACHE:-$REPO/.cache/kernel-lane}"

SUITE=bookworm
# What the guest needs. Changing this list changes the key, so the image is rebuilt.
PACKAGES=(
  lvm2 thin-provisioning-tools
  nfs-kernel-server nfs-common rpcbind
  qemu-utils qemu-system-common fuse3 kmod iproute2 util-linux procps e2fsprogs xfsprogs
  targetcli-fb open-iscsi dbus
  busybox-static
)
KERNEL_META=linux-image-cloud-amd64

log() { printf 'kernel-lane[image]: %s\n' "$*" >&2; }

key="$( { cat "${BASH_SOURCE[0]}"; printf '%s\n' "$SUITE" "$KERNEL_META" "${PACKAGES[@]}"; } | sha256sum | cut -c1-16)"
OUT="$CACHE/img-$key"

if [[ -f "$OUT/DONE" ]]; then
  log "reusing $OUT"
  printf '%s\n' "$OUT"
  exit 0
fi

mkdir -p "$CACHE"
# One build at a time; a second caller waits and then reuses.
exec 9>"$CACHE/build.lock"
flock 9
if [[ -f "$OUT/DONE" ]]; then
  log "reusing $OUT (built meanwhile)"
  printf '%s\n' "$OUT"
  exit 0
fi

[[ "$(id -u)" == 0 ]] || { log "building the image needs root (mmdebstrap, chroot)"; exit 1; }
command -v mmdebstrap >/dev/null || { log "mmdebstrap missing: run scripts/kernel-lane/install-deps.sh"; exit 1; }

WORK="$(mktemp -d "$CACHE/build.XXXXXX")"
cleanup() {
  # mmdebstrap unmounts on its own; make sure nothing is left mounted under WORK before removing it.
  if [[ -d "$WORK" ]]; then
    { grep -o " $WORK/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$WORK" || true
  fi
}
trap cleanup EXIT

# --- apt sources: this machine's own Debian entries for the suite (deb822 .sources or one-line .list) ---
sources_from_host() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    awk -v s="$SUITE" '$1=="deb" { for (i=2;i<=NF;i++) if ($i==s || $i==s"-updates" || $i==s"-security") { print; next } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    # keep stanzas of Types: deb whose Suites name the suite (or its -updates/-security); keep them whole
    awk -v s="$SUITE" '
      function flush() { if (buf != "" && isdeb && hit) printf "%s\n", buf; buf=""; isdeb=0; hit=0 }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]*#/ { next }
      {
        buf = buf $0 "\n"
        if (tolower($1) == "types:") for (i=2;i<=NF;i++) if ($i=="deb") isdeb=1
        if (tolower($1) == "suites:") for (i=2;i<=NF;i++) if ($i==s || $i==s"-updates" || $i==s"-security") hit=1
      }
      END { flush() }' "$f"
  done
}
SOURCES="$WORK/sources"
if [[ -n "${KINDLING_KERNEL_APT_SOURCES:-}" ]]; then
  cp "$KINDLING_KERNEL_APT_SOURCES" "$SOURCES"
else
  sources_from_host >"$SOURCES"
fi
if ! grep -q . "$SOURCES"; then
  log "no Debian $SUITE entry found in /etc/apt/sources.list*; set KINDLING_KERNEL_APT_SOURCES to a sources file"
  exit 1
fi
log "apt sources:"; sed 's/^/    /' "$SOURCES" >&2

ROOT="$WORK/root"
mkdir -p "$ROOT" "$WORK/out"

# --- files placed into the root filesystem ---
# The boot stub: mounts the basics, finds the per-run payload disk (serial kl-payload), runs its guest-init.sh.
cat >"$WORK/kindling-boot" <<'BOOT'
#!/bin/bash
# Kindling kernel-lane boot stub (baked into the image; the real work is in the payload's guest-init.sh).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mountpoint -q /run || mount -t tmpfs -o mode=0755 tmpfs /run
stop() { echo "kindling-boot: $*" >/dev/console; sync; echo o >/proc/sysrq-trigger; sleep 5; busybox poweroff -f; }
disk_by_serial() {
  local d
  for d in /sys/block/vd*; do
    [[ -r "$d/serial" && "$(cat "$d/serial")" == "$1" ]] && { echo "/dev/${d##*/}"; return 0; }
  done
  return 1
}
payload="$(disk_by_serial kl-payload)" || stop "no payload disk (serial kl-payload)"
mkdir -p /opt/kindling
mount -o ro "$payload" /opt/kindling || stop "cannot mount payload $payload"
[[ -x /opt/kindling/guest-init.sh ]] || stop "payload has no guest-init.sh"
exec /opt/kindling/guest-init.sh
BOOT

# The initrd's /init (busybox sh): virtio modules, root disk by serial kl-root, switch_root to kl.init.
cat >"$WORK/initrd-init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /dev /proc /sys /newroot
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
for m in $(cat /modules.list); do insmod "/modules/$m" 2>/dev/null; done
kinit=/usr/local/sbin/kindling-boot
for arg in $(cat /proc/cmdline); do case "$arg" in kl.init=*) kinit="${arg#kl.init=}";; esac; done
root=
i=0
while [ -z "$root" ] && [ $i -lt 100 ]; do
  for d in /sys/block/vd*; do
    [ -r "$d/serial" ] && [ "$(cat "$d/serial")" = kl-root ] && root="/dev/${d##*/}"
  done
  [ -n "$root" ] || { sleep 0.1; i=$((i+1)); }
done
if [ -z "$root" ] || ! mount -t ext4 -o rw "$root" /newroot; then
  echo "initrd: no root disk (serial kl-root)"; ls /sys/block; echo o >/proc/sysrq-trigger; sleep 5; poweroff -f
fi
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot "$kinit"
INIT

# --- customize hook: kernel files (without initramfs-tools, whose udev the guest does not want) ---
cat >"$WORK/customize.sh" <<'HOOK'
#!/bin/bash
set -euo pipefail
root="$1"; work="$2"; meta="$3"
kpkg="$(chroot "$root" apt-cache depends "$meta" | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')"
[[ -n "$kpkg" ]] || { echo "cannot resolve $meta" >&2; exit 1; }
echo "kernel package: $kpkg" >&2
chroot "$root" sh -c "cd /tmp && apt-get download -q '$kpkg'" >&2
deb="$(ls "$root"/tmp/"$kpkg"_*.deb)"
mkdir -p "$work/kernel"
dpkg-deb -x "$deb" "$work/kernel"
rm -f "$deb"
kver="$(ls "$work/kernel/lib/modules")"
mkdir -p "$root/usr/lib/modules"
cp -a "$work/kernel/lib/modules/$kver" "$root/usr/lib/modules/"
cp "$work/kernel/boot/vmlinuz-$kver" "$work/out/vmlinuz"
printf '%s\n' "$kver" >"$work/out/kver"
chroot "$root" depmod -a "$kver"
rm -rf "$work/kernel"
# boot stub, hostname, hosts, fstab
install -m 0755 "$work/kindling-boot" "$root/usr/local/sbin/kindling-boot"
echo kindling-guest >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tkindling-guest\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
: >"$root/etc/fstab"
mkdir -p "$root/export" "$root/opt/kindling"
# trim
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/usr/share/doc/* "$root"/usr/share/man/* \
  "$root"/usr/share/locale/* "$root"/usr/share/info/*
HOOK
chmod +x "$WORK/customize.sh"

t0=$SECONDS
log "mmdebstrap $SUITE (minbase) with: ${PACKAGES[*]}"
include="$(IFS=,; echo "${PACKAGES[*]}")"
if ! mmdebstrap --variant=minbase --mode=root --format=directory \
  --include="$include" \
  --aptopt='Acquire::Languages "none"' \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --customize-hook="\"$WORK/customize.sh\" \"\$1\" \"$WORK\" \"$KERNEL_META\"" \
  "$SUITE" "$ROOT" - <"$SOURCES" >"$WORK/mmdebstrap.log" 2>&1; then
  tail -n 40 "$WORK/mmdebstrap.log" >&2
  log "mmdebstrap failed (log above)"
  exit 1
fi
log "rootfs built in $((SECONDS - t0)) s ($(du -sh "$ROOT" | cut -f1))"

kver="$(cat "$WORK/out/kver")"

# --- initrd: busybox + the virtio modules needed to reach the root disk ---
IRD="$WORK/initrd"
mkdir -p "$IRD/bin" "$IRD/modules"
cp "$ROOT/bin/busybox" "$IRD/bin/busybox"
install -m 0755 "$WORK/initrd-init" "$IRD/init"
: >"$IRD/modules.list"
# modprobe --show-depends prints "insmod /path/mod.ko" in load order
while read -r verb path _; do
  [[ "$verb" == insmod ]] || continue
  base="$(basename "$path")"
  grep -qx "$base" "$IRD/modules.list" && continue
  cp "$path" "$IRD/modules/$base"
  echo "$base" >>"$IRD/modules.list"
done < <(for m in virtio_pci virtio_blk; do modprobe -d "$ROOT" -S "$kver" --show-depends "$m"; done)
grep -q virtio_blk "$IRD/modules.list" || { log "virtio_blk not found for $kver"; exit 1; }
(cd "$IRD" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/out/initrd.img"
log "initrd: $(tr '\n' ' ' <"$IRD/modules.list")"

# --- root filesystem image: raw ext4, 1 GiB sparse ---
mkfs.ext4 -q -F -L kl-root -d "$ROOT" -E lazy_itable_init=0,lazy_journal_init=0 "$WORK/out/root.img" 1G >&2
cp "$WORK/mmdebstrap.log" "$WORK/out/build.log"
printf 'built %s in %s s\nkernel %s\npackages %s\n' "$(date -u +%FT%TZ)" "$((SECONDS - t0))" "$kver" "${PACKAGES[*]}" >"$WORK/out/DONE"

rm -rf "$OUT"
mv "$WORK/out" "$OUT"
# keep only this image (older keys are dead weight)
for old in "$CACHE"/img-*; do
  [[ "$old" == "$OUT" ]] || rm -rf "$old"
done
log "image ready in $((SECONDS - t0)) s: $OUT ($(du -sh "$OUT" | cut -f1) on disk)"
printf '%s\n' "$OUT"
