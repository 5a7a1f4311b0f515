#!/bin/bash
# Kernel-lane smoke check, run inside the guest by guest-init.sh (KL_MODE=smoke) before the agent exists.
# Proves the guest can do what Kindling's drivers will do: real thick and thin LVM snapshots, lvconvert --merge,
# dd between LVs, extending a thick origin that has a snapshot (deactivate, extend, activate), an NFSv4 mount of
# 127.0.0.1:/export with qemu-img on it, and the host's Node binary. Prints one "PASS name (s)" or
# "FAIL name: why" line per check and "SMOKE-RESULT passed=N failed=M" at the end; also written to results.txt.
set -uo pipefail
KL=/opt/kindling
OUT=/run/kl-out
RESULTS="$OUT/results.txt"
: "${KL_VG_THICK:=kindling-thick}" "${KL_VG_THIN:=kindling-thin}" "${KL_THIN_POOL:=kindling-thin-pool}"
TV="$KL_VG_THICK" NV="$KL_VG_THIN"
passed=0 failed=0
: >"$RESULTS"

now() { cut -d' ' -f1 /proc/uptime; }
# check NAME CMD...: runs CMD (a function), times it, records PASS/FAIL
check() {
  local name="$1" t0 t1 out rc
  shift
  t0="$(now)"
  out="$("$@" 2>&1)"; rc=$?
  t1="$(now)"
  local secs
  secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
  if ((rc == 0)); then
    passed=$((passed + 1)); echo "PASS $name (${secs}s)" | tee -a "$RESULTS"
  else
    failed=$((failed + 1)); echo "FAIL $name (${secs}s): exit $rc: $(printf '%s' "$out" | tail -n 8 | tr '\n' '|')" | tee -a "$RESULTS"
  fi
  printf '%s\n' "$out" | sed "s/^/    [$name] /" >>"$OUT/smoke-detail.log"
}

sum() { dd if="$1" bs=1M count="${2:-4}" iflag=direct status=none | sha256sum | cut -d' ' -f1; }
pattern() { dd if=/dev/urandom of="$1" bs=1M count="${2:-4}" oflag=direct conv=fsync status=none; }
zero() { dd if=/dev/zero of="$1" bs=1M count="${2:-4}" oflag=direct conv=fsync status=none; }
expect_eq() { [[ "$1" == "$2" ]] || { echo "expected $2, got $1"; return 1; }; }

t_dm_targets() {
  dmsetup targets
  dmsetup targets | grep -q '^snapshot ' && dmsetup targets | grep -q '^thin-pool ' && dmsetup targets | grep -q '^thin '
}

t_node() {
  "$KL/bin/node" -e 'const c=require("node:crypto");console.log(process.version, c.createHash("sha256").update("x").digest("hex").slice(0,8))'
}

# --- thick ---
t_thick_create() {
  lvcreate -q -y -L 1G -n vol1 "$TV" && [[ -b "/dev/$TV/vol1" ]] && pattern "/dev/$TV/vol1" && sum "/dev/$TV/vol1" >/tmp/vol1.orig
}
t_thick_snapshot() {
  lvcreate -q -y -s -L 1G -n snap1 "$TV/vol1" || return 1
  zero "/dev/$TV/vol1" || return 1
  expect_eq "$(sum "/dev/$TV/snap1")" "$(cat /tmp/vol1.orig)" || return 1
  expect_eq "$(sum "/dev/$TV/vol1")" "$(head -c 4M /dev/zero | sha256sum | cut -d" " -f1)"
}
t_thick_dd_clone() {
  lvcreate -q -y -L 1G -n clone1 "$TV" || return 1
  # large-block direct copy of the whole snapshot, as the driver's clone does
  dd if="/dev/$TV/snap1" of="/dev/$TV/clone1" bs=4M iflag=direct oflag=direct conv=fsync status=none || return 1
  expect_eq "$(sum "/dev/$TV/clone1")" "$(cat /tmp/vol1.orig)"
}
t_thick_extend_with_snapshot() {
  # growing an active origin that has a thick snapshot is refused; the driver deactivates, extends, reactivates
  if lvextend -q -L 2G "$TV/vol1"; then
    echo "note: lvextend on an active origin with a snapshot was accepted"
  else
    lvchange -q -an "$TV/vol1" || return 1
    lvextend -q -L 2G "$TV/vol1" || return 1
    lvchange -q -ay "$TV/vol1" || return 1
  fi
  expect_eq "$(lvs --noheadings --units g --nosuffix -o lv_size "$TV/vol1" | tr -d ' ')" "2.00"
}
t_thick_merge() {
  lvconvert -q --merge "$TV/snap1" || return 1
  # merge of an unused origin starts now and lvconvert waits for it; the snapshot LV is gone afterwards
  lvs "$TV/snap1" >/dev/null 2>&1 && { echo "snap1 still exists"; lvs -a "$TV"; return 1; }
  expect_eq "$(sum "/dev/$TV/vol1")" "$(cat /tmp/vol1.orig)"
}
t_thick_remove() {
  lvremove -q -y "$TV/vol1" "$TV/clone1" && [[ -z "$(lvs --noheadings "$TV")" ]]
}

# --- thin ---
t_thin_create() {
  lvcreate -q -y -V 1G -T "$NV/$KL_THIN_POOL" -n tvol || return 1
  pattern "/dev/$NV/tvol" && sum "/dev/$NV/tvol" >/tmp/tvol.orig
}
t_thin_snapshot() {
  lvcreate -q -y -s -n tsnap "$NV/tvol" || return 1
  # thin snapshots carry the activation-skip flag: -K activates anyway
  lvchange -q -ay -K "$NV/tsnap" || return 1
  zero "/dev/$NV/tvol" || return 1
  expect_eq "$(sum "/dev/$NV/tsnap")" "$(cat /tmp/tvol.orig)"
}
t_thin_clone_from_snapshot() {
  lvcreate -q -y -V 1G -T "$NV/$KL_THIN_POOL" -n tclone || return 1
  dd if="/dev/$NV/tsnap" of="/dev/$NV/tclone" bs=4M iflag=direct oflag=direct conv=fsync status=none || return 1
  expect_eq "$(sum "/dev/$NV/tclone")" "$(cat /tmp/tvol.orig)"
}
t_thin_extend() {
  lvextend -q -L 2G "$NV/tvol" && expect_eq "$(lvs --noheadings --units g --nosuffix -o lv_size "$NV/tvol" | tr -d ' ')" "2.00"
}
t_thin_merge() {
  # a thin merge happens on the origin's next activation
  lvchange -q -an "$NV/tsnap" || return 1
  lvconvert -q --merge "$NV/tsnap" || return 1
  lvchange -q -an "$NV/tvol" || return 1
  lvchange -q -ay "$NV/tvol" || return 1
  lvs "$NV/tsnap" >/dev/null 2>&1 && { echo "tsnap still exists"; lvs -a "$NV"; return 1; }
  expect_eq "$(sum "/dev/$NV/tvol")" "$(cat /tmp/tvol.orig)"
}
t_thin_remove() {
  lvremove -q -y "$NV/tvol" "$NV/tclone" && lvs --noheadings -o lv_name "$NV" | grep -qv tvol
}

# --- iSCSI: export an LV with LIO (as the LVM driver's connect() does) and log in to it over loopback ---
IQN=iqn.2010-10.org.openstack:volume-smoke
INITIATOR="$(sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi)"
t_iscsi_export() {
  lvcreate -q -y -L 1G -n ivol "$TV" || return 1
  pattern "/dev/$TV/ivol" && sum "/dev/$TV/ivol" >/tmp/ivol.orig || return 1
  targetcli /backstores/block create name=ivol "dev=/dev/$TV/ivol" &&
    targetcli /iscsi create "$IQN" &&
    targetcli "/iscsi/$IQN/tpg1/luns" create /backstores/block/ivol &&
    targetcli "/iscsi/$IQN/tpg1" set attribute authentication=1 generate_node_acls=0 &&
    targetcli "/iscsi/$IQN/tpg1/acls" create "$INITIATOR" &&
    targetcli "/iscsi/$IQN/tpg1/acls/$INITIATOR" set auth userid=smokeuser password=smokesecret12345
}
t_iscsi_login() {
  local p=127.0.0.1:3260 dev
  iscsiadm -m discovery -t sendtargets -p "$p" | grep -q "$IQN" || return 1
  iscsiadm -m node -T "$IQN" -p "$p" --op update -n node.session.auth.authmethod -v CHAP &&
    iscsiadm -m node -T "$IQN" -p "$p" --op update -n node.session.auth.username -v smokeuser &&
    iscsiadm -m node -T "$IQN" -p "$p" --op update -n node.session.auth.password -v smokesecret12345 &&
    iscsiadm -m node -T "$IQN" -p "$p" --login || return 1
  for _ in $(seq 1 50); do
    dev="$(iscsiadm -m session -P 3 2>/dev/null | sed -n 's/.*Attached scsi disk \([a-z]*\).*/\1/p' | head -n1)"
    [[ -n "$dev" && -b "/dev/$dev" ]] && break
    sleep 0.2
  done
  [[ -n "$dev" && -b "/dev/$dev" ]] || { echo "no SCSI disk after login"; iscsiadm -m session -P 3; return 1; }
  echo "logged in: /dev/$dev"
  expect_eq "$(sum "/dev/$dev")" "$(cat /tmp/ivol.orig)" || return 1
  iscsiadm -m node -T "$IQN" -p "$p" --logout && iscsiadm -m node -T "$IQN" -p "$p" --op delete
}
t_iscsi_teardown() {
  targetcli /iscsi delete "$IQN" && targetcli /backstores/block delete ivol && lvremove -q -y "$TV/ivol"
}

# --- NFS ---
t_nfs_mount() {
  mkdir -p /mnt/nfs
  mount -t nfs -o vers=4.2 127.0.0.1:/export /mnt/nfs || return 1
  grep ' /mnt/nfs ' /proc/mounts
  grep -q ' /mnt/nfs nfs4 ' /proc/mounts
}
t_nfs_lock() {
  # qemu-img and the agent take POSIX locks on the share: they must not stall for the server's grace period
  local t0 t1
  t0="$(now)"
  flock -w 30 /mnt/nfs/.lock true || return 1
  t1="$(now)"
  echo "lock after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s (guest uptime $t1 s)"
}
t_nfs_qemu_img() {
  qemu-img create -q -f qcow2 /mnt/nfs/volume-a.qcow2 1G || return 1
  qemu-img info /mnt/nfs/volume-a.qcow2 | grep -q 'virtual size: 1 GiB' || return 1
  qemu-io -c 'write -P 0xab 0 4M' /mnt/nfs/volume-a.qcow2 >/dev/null || return 1
  qemu-img snapshot -c s1 /mnt/nfs/volume-a.qcow2 || return 1
  qemu-io -c 'write -P 0xcd 0 4M' /mnt/nfs/volume-a.qcow2 >/dev/null || return 1
  qemu-img convert -O qcow2 -l snapshot.name=s1 /mnt/nfs/volume-a.qcow2 /mnt/nfs/volume-b.qcow2 || return 1
  qemu-io -c 'read -P 0xab 0 4M' /mnt/nfs/volume-b.qcow2 | grep -q 'read 4194304' || return 1
  qemu-img resize -q /mnt/nfs/volume-a.qcow2 2G || return 1
  qemu-img info /mnt/nfs/volume-a.qcow2 | grep -q 'virtual size: 2 GiB'
}
t_nfs_raw_loop() {
  # a raw file on the share attached through a loop device, as the NFS driver's local attach does
  truncate -s 1G /mnt/nfs/volume-c.raw || return 1
  local dev s
  dev="$(losetup -f --show /mnt/nfs/volume-c.raw)" || return 1
  pattern "$dev" || return 1
  s="$(sum "$dev")"
  losetup -d "$dev" || return 1
  expect_eq "$(sum /mnt/nfs/volume-c.raw)" "$s"
}
t_nfs_umount() {
  rm -f /mnt/nfs/volume-*.qcow2 /mnt/nfs/volume-*.raw && umount /mnt/nfs
}

check dm-targets t_dm_targets
check node t_node
check thick-create t_thick_create
check thick-snapshot t_thick_snapshot
check thick-dd-clone t_thick_dd_clone
check thick-extend-origin-with-snapshot t_thick_extend_with_snapshot
check thick-merge t_thick_merge
check thick-remove t_thick_remove
check iscsi-export t_iscsi_export
check iscsi-login t_iscsi_login
check iscsi-teardown t_iscsi_teardown
check thin-create t_thin_create
check thin-snapshot t_thin_snapshot
check thin-clone-from-snapshot t_thin_clone_from_snapshot
check thin-extend t_thin_extend
check thin-merge t_thin_merge
check thin-remove t_thin_remove
check nfs-mount t_nfs_mount
check nfs-lock t_nfs_lock
check nfs-qemu-img t_nfs_qemu_img
check nfs-raw-loop t_nfs_raw_loop
check nfs-umount t_nfs_umount

echo "SMOKE-RESULT passed=$passed failed=$failed" | tee -a "$RESULTS"
