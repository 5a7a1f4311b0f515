#!/bin/bash
# Kindling kernel lane: the guest's init. Runs as PID 1 (exec'd by the image's boot stub from the payload disk,
# mounted read-only at /opt/kindling). Brings up modules, LVM, NFS and networking, then runs the lane's payload:
#   KL_MODE=smoke  smoke.sh (real LVM/NFS checks, PASS/FAIL lines) and powers off
#   KL_MODE=agent  the Kindling agent (+ the test-only exec helper) until the host stops the VM
# Results and logs go to the output disk (serial kl-out) as a tar; progress lines go to the serial console.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
KL=/opt/kindling
OUT=/run/kl-out
T0="$(cut -d' ' -f1 /proc/uptime)"

log() { printf '[guest %6s] %s\n' "$(cut -d' ' -f1 /proc/uptime)" "$*" >/dev/console; printf '%s\n' "$*" >>"$OUT/guest-init.log" 2>/dev/null || true; }

disk_by_serial() {
  local d
  for d in /sys/block/vd*; do
    [[ -r "$d/serial" && "$(cat "$d/serial")" == "$1" ]] && { echo "/dev/${d##*/}"; return 0; }
  done
  return 1
}

save_out() {
  local out
  dmesg >"$OUT/dmesg.txt" 2>/dev/null || true
  out="$(disk_by_serial kl-out)" || { log "no output disk"; return 0; }
  tar -cf "$out" -C "$OUT" . 2>/dev/null && sync
}

power_off() {
  log "KL-POWEROFF $*"
  save_out
  sync
  echo o >/proc/sysrq-trigger
  sleep 10
  busybox poweroff -f
}

fail() { log "KL-FATAL $*"; power_off "fatal"; }

run() { # run CMD...: log and run, fail the boot on error
  local out rc
  out="$("$@" 2>&1)"; rc=$?
  ((rc == 0)) || fail "'$*' exited $rc: $out"
  [[ -z "$out" ]] || printf '%s\n' "$out" >>"$OUT/guest-init.log"
}

# `guest-init.sh save-out` (run by the host through the exec helper before it stops the VM): write the logs
# to the output disk now, since the VM is killed rather than powered off in agent mode.
if [[ "${1:-}" == save-out ]]; then
  save_out
  exit 0
fi

# --- basics ---
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mountpoint -q /run || mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p "$OUT" /dev/pts /dev/shm /run/lock /run/lvm
mountpoint -q /dev/pts || mount -t devpts devpts /dev/pts
mountpoint -q /dev/shm || mount -t tmpfs tmpfs /dev/shm
mountpoint -q /tmp || mount -t tmpfs tmpfs /tmp
echo 1 >/proc/sys/kernel/sysrq
hostname kindling-guest

[[ -r "$KL/lane.env" ]] || fail "payload has no lane.env"
# shellcheck disable=SC1091
source "$KL/lane.env"
: "${KL_MODE:=smoke}"
log "KL-BOOT mode=$KL_MODE kernel=$(uname -r) init-started-at=${T0}s"

# --- modules ---
mkdir -p /etc/target   # target_core_mod looks for its db_root here when it loads
for m in virtio_net dm_mod dm_snapshot dm_thin_pool dm_bufio loop fuse sunrpc nfsd nfs nfsv4 \
  configfs target_core_mod target_core_iblock iscsi_target_mod iscsi_tcp sd_mod; do
  modprobe "$m" 2>>"$OUT/guest-init.log" || fail "modprobe $m"
done
echo Y >/sys/module/nfsd/parameters/nfs4_disable_idmapping 2>/dev/null || true

# --- LVM without udev or dmeventd ---
mkdir -p /etc/lvm
cat >/etc/lvm/lvm.conf <<'EOF'
devices {
  obtain_device_list_from_udev = 0
  external_device_info_source = "none"
  use_devicesfile = 0
  scan = [ "/dev" ]
  filter = [ "a|^/dev/vd|", "a|^/dev/loop|", "r|.*|" ]
}
activation {
  udev_sync = 0
  udev_rules = 0
  monitoring = 0
  verify_udev_operations = 0
}
global {
  use_lvmpolld = 0
  event_activation = 0
}
EOF

# --- networking: loopback + qemu user net (static, no DHCP; nothing routed beyond the user net) ---
run ip link set lo up
if ip link show eth0 >/dev/null 2>&1; then
  run ip link set eth0 up
  run ip addr add 10.0.2.15/24 dev eth0
else
  log "no eth0 (links: $(ls /sys/class/net | tr '\n' ' '))"
fi

# --- NFS server first (its grace period runs out while LVM is set up): NFSv4 only, nfsdcld, short grace ---
EXPORT_DEV="$(disk_by_serial kl-export)" || fail "no export disk kl-export"
mkdir -p /export /run/rpc_pipefs /var/lib/nfs/nfsdcld /var/lib/nfs/v4recovery
run mount -t ext4 "$EXPORT_DEV" /export
chmod 0777 /export
echo '/export 127.0.0.1(rw,sync,no_subtree_check,no_root_squash,insecure)' >/etc/exports
# the functional suite's own share, on its own filesystem (its capacity figures are the filesystem's)
if SUITE_EXPORT_DEV="$(disk_by_serial kl-suite-export)"; then
  mkdir -p /suite
  run mount -t ext4 "$SUITE_EXPORT_DEV" /suite
  chmod 0777 /suite
  echo '/suite 127.0.0.1(rw,sync,no_subtree_check,no_root_squash,insecure)' >>/etc/exports
fi
mountpoint -q /proc/fs/nfsd || run mount -t nfsd nfsd /proc/fs/nfsd
mountpoint -q /run/rpc_pipefs || run mount -t rpc_pipefs sunrpc /run/rpc_pipefs
run rpcbind -w
run exportfs -ra
run rpc.mountd -N 3
nfsdcld -p /run/rpc_pipefs >>"$OUT/guest-init.log" 2>&1 || log "nfsdcld did not start (grace falls back to -G)"
run rpc.nfsd -N 3 -G 10 -L 10 4
pgrep -x nfsdcld >/dev/null && log "nfsdcld running" || log "nfsdcld not running"
log "NFS ready: $(cat /proc/fs/nfsd/versions 2>/dev/null) exports: $(exportfs -v | tr -s ' \t' ' ' | tr '\n' ';')"

# --- iSCSI: LIO target (the agent's connect() runs targetcli) and an initiator for loopback logins ---
mountpoint -q /sys/kernel/config || run mount -t configfs configfs /sys/kernel/config
mkdir -p /etc/iscsi /etc/rtslib-fb-target /var/lib/iscsi /run/dbus
# targetcli asks the system bus for tcmu-runner handlers and fails outright without one
dbus-daemon --system --fork >>"$OUT/guest-init.log" 2>&1 || log "dbus-daemon did not start (targetcli will fail)"
echo 'InitiatorName=iqn.2004-10.org.kindling:kernel-lane-guest' >/etc/iscsi/initiatorname.iscsi
iscsid >>"$OUT/guest-init.log" 2>&1 || log "iscsid did not start"

# --- disks ---
VG_THICK_DEV="$(disk_by_serial kl-vg-thick)" || fail "no VG disk kl-vg-thick"
VG_THIN_DEV="$(disk_by_serial kl-vg-thin)" || fail "no VG disk kl-vg-thin"
: "${KL_VG_THICK:=kindling-thick}" "${KL_VG_THIN:=kindling-thin}" "${KL_THIN_POOL:=kindling-thin-pool}"
run pvcreate -q "$VG_THICK_DEV" "$VG_THIN_DEV"
run vgcreate -q "$KL_VG_THICK" "$VG_THICK_DEV"
run vgcreate -q "$KL_VG_THIN" "$VG_THIN_DEV"
if [[ "${KL_PRECREATE_THIN_POOL:-1}" == 1 ]]; then
  run lvcreate -q --type thin-pool -l 90%FREE -n "$KL_THIN_POOL" "$KL_VG_THIN"
fi
# the functional suite's own VGs
if SUITE_THICK_DEV="$(disk_by_serial kl-vg-suite-thick)" && SUITE_THIN_DEV="$(disk_by_serial kl-vg-suite-thin)"; then
  run pvcreate -q "$SUITE_THICK_DEV" "$SUITE_THIN_DEV"
  run vgcreate -q kindling-suite-thick "$SUITE_THICK_DEV"
  run vgcreate -q kindling-suite-thin "$SUITE_THIN_DEV"
  run lvcreate -q --type thin-pool -l 90%FREE -n kindling-suite-pool kindling-suite-thin
fi
# the crash scenarios' VGs (their agent is started by crash-agent.sh, from the tests)
if CRASH_THICK_DEV="$(disk_by_serial kl-vg-crash-thick)" && CRASH_THIN_DEV="$(disk_by_serial kl-vg-crash-thin)"; then
  run pvcreate -q "$CRASH_THICK_DEV" "$CRASH_THIN_DEV"
  run vgcreate -q kindling-crash-thick "$CRASH_THICK_DEV"
  run vgcreate -q kindling-crash-thin "$CRASH_THIN_DEV"
  run lvcreate -q --type thin-pool -l 90%FREE -n kindling-crash-pool kindling-crash-thin
fi
log "LVM ready: $(vgs --noheadings -o vg_name,vg_size,vg_free 2>/dev/null | tr -s ' ' | tr '\n' ';')"

log "KL-INFRA-READY after $(cut -d' ' -f1 /proc/uptime)s"

NODE="$KL/bin/node"
case "$KL_MODE" in
  smoke)
    bash "$KL/smoke.sh" 2>&1 | tee "$OUT/smoke.log" >/dev/console
    log "KL-SMOKE-DONE"
    power_off "smoke done"
    ;;
  agent)
    mkdir -p /var/lib/kindling
    cp "$KL/kindling.json" /etc/kindling.json
    [[ -f "$KL/kindling-crash.json" ]] && cp "$KL/kindling-crash.json" /etc/kindling-crash.json
    [[ -x "$NODE" ]] || fail "payload has no node binary"
    [[ -f "$KL/app/packages/agent/dist/bin.js" ]] || fail "payload has no packages/agent/dist/bin.js"
    if [[ -f "$KL/guest-exec.mjs" && -n "${KL_EXEC_PORT:-}" ]]; then
      KL_TOKEN="$KL_TOKEN" "$NODE" "$KL/guest-exec.mjs" "$KL_EXEC_PORT" >>"$OUT/guest-exec.log" 2>&1 &
      log "exec helper on :$KL_EXEC_PORT (pid $!)"
    fi
    log "starting agent: node packages/agent/dist/bin.js --config /etc/kindling.json"
    (cd "$KL/app" && exec "$NODE" packages/agent/dist/bin.js --config /etc/kindling.json) 2>&1 \
      | tee -a "$OUT/agent.log" | sed -u 's/^/[agent] /' >/dev/console &
    agent_pipe=$!
    # tell the console once the agent answers /healthz locally (the host polls the forwarded port itself)
    for _ in $(seq 1 600); do
      if "$NODE" -e "fetch('http://127.0.0.1:${KL_AGENT_PORT:-8600}/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))" 2>/dev/null; then
        log "KL-AGENT-READY after $(cut -d' ' -f1 /proc/uptime)s"
        break
      fi
      kill -0 "$agent_pipe" 2>/dev/null || break
      sleep 0.5
    done
    wait "$agent_pipe"
    log "KL-AGENT-EXITED"
    power_off "agent exited"
    ;;
  shell)
    log "shell mode: PID 1 sleeps; use the exec helper"
    [[ -x "$NODE" && -f "$KL/guest-exec.mjs" ]] && KL_TOKEN="$KL_TOKEN" "$NODE" "$KL/guest-exec.mjs" "$KL_EXEC_PORT" >>"$OUT/guest-exec.log" 2>&1 &
    while :; do sleep 3600; done
    ;;
  *)
    fail "unknown KL_MODE=$KL_MODE"
    ;;
esac
