#!/usr/bin/env bash
# Kindling real-kernel lane: boots a Debian guest under qemu and runs the test-kernel/ scenarios against the
# agent inside it (real device-mapper, LVM thick + thin, NFS mounted by the agent).
#
#   bash scripts/kernel-lane/run.sh            agent mode: boot, wait for /healthz, run vitest in test-kernel/
#   bash scripts/kernel-lane/run.sh --smoke    no agent needed: the guest runs smoke.sh (LVM/NFS checks)
#   bash scripts/kernel-lane/run.sh --shell    agent mode, but wait (print URLs) instead of running vitest
#   ... -- ARGS                                 extra arguments for vitest (a file filter, -t NAME, ...)
# Environment: KINDLING_KERNEL_ACCEL (tcg | kvm | kvm:tcg; default tcg), KINDLING_KERNEL_TIMEOUT (whole lane,
# seconds; default 1500: the LVM copy scenarios added ~10 min of guest time under TCG), KINDLING_KERNEL_KEEP=1 (keep the run folder), KINDLING_KERNEL_CACHE (cache folder).
# Expects `pnpm build` to have run (packages/*/dist). Exits non-zero on any failure, timeout or start failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${KINDLING_KERNEL_CACHE:-$REPO/.cache/kernel-lane}"
export KINDLING_KERNEL_CACHE="$CACHE"
MODE=agent
ACCEL="${KINDLING_KERNEL_ACCEL:-tcg}"
LANE_TIMEOUT="${KINDLING_KERNEL_TIMEOUT:-1500}"
BOOT_TIMEOUT="${KINDLING_KERNEL_BOOT_TIMEOUT:-240}"
KEEP="${KINDLING_KERNEL_KEEP:-0}"
VITEST_ARGS=()
while (($#)); do
  case "$1" in
    --smoke) MODE=smoke ;;
    --shell) MODE=shell ;;
    --keep) KEEP=1 ;;
    --accel=*) ACCEL="${1#--accel=}" ;;
    --) shift; VITEST_ARGS=("$@"); break ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) VITEST_ARGS+=("$1") ;;
  esac
  shift
done

LANE_START=$SECONDS
DEADLINE=$((SECONDS + LANE_TIMEOUT))
log() { printf 'kernel-lane: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
left() { echo $((DEADLINE - SECONDS)); }

# --- 1. host dependencies and the image ---
bash "$HERE/install-deps.sh"
t=$SECONDS
IMG="$(bash "$HERE/build-image.sh")" || die "could not build the guest image"
T_IMAGE=$((SECONDS - t))
for f in vmlinuz initrd.img root.img; do [[ -f "$IMG/$f" ]] || die "image is missing $f ($IMG)"; done

# --- 2. the run folder, its cleanup, and the payload ---
mkdir -p "$CACHE"
RUN="$(mktemp -d "$CACHE/run.XXXXXX")"
LAST="$CACHE/last"
TOKEN=
read_out() { mkdir -p "$RUN/out" && tar -xf "$RUN/out.img" -C "$RUN/out" 2>/dev/null; }
QEMU_PID=
EXEC_PORT=
cleanup() {
  local rc=$?
  if [[ -n "$QEMU_PID" ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
    # agent mode: have the guest write its logs (agent.log, dmesg, ...) to the output disk first
    if [[ -n "$EXEC_PORT" ]]; then
      curl -fsS -m 20 -o /dev/null -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
        -d '{"argv":["/opt/kindling/guest-init.sh","save-out"],"timeoutMs":15000}' \
        "http://127.0.0.1:$EXEC_PORT/exec" 2>/dev/null && read_out || true
    fi
    kill "$QEMU_PID" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
  fi
  # keep the logs of the last run in .cache/kernel-lane/last/ for a look afterwards
  rm -rf "$LAST" && mkdir -p "$LAST"
  cp "$RUN"/*.log "$RUN"/*.txt "$RUN"/*.xml "$LAST"/ 2>/dev/null || true
  [[ -d "$RUN/out" ]] && cp -r "$RUN/out" "$LAST/guest" 2>/dev/null || true
  if [[ "$KEEP" == 1 ]]; then
    log "run folder kept: $RUN"
  else
    rm -rf "$RUN"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t=$SECONDS
TOKEN="kernel-lane-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
P="$RUN/payload"
mkdir -p "$P/bin"
install -m 0755 "$HERE/guest-init.sh" "$P/guest-init.sh"
install -m 0644 "$HERE/smoke.sh" "$HERE/guest-exec.mjs" "$P/"
install -m 0755 "$HERE/crash-agent.sh" "$HERE/stall-shim.sh" "$P/"
NODE_BIN="$(readlink -f "$(command -v node)")"
cp "$NODE_BIN" "$P/bin/node"

if [[ "$MODE" != smoke ]]; then
  [[ -f "$REPO/packages/agent/dist/bin.js" ]] || die "packages/agent/dist/bin.js is missing: run 'pnpm build' first"
  A="$P/app"
  mkdir -p "$A/packages"
  cp "$REPO/package.json" "$A/"
  # node_modules as pnpm laid it out (its relative symlinks stay valid in the copy); hard links when possible
  cp -al "$REPO/node_modules" "$A/" 2>/dev/null || cp -a "$REPO/node_modules" "$A/"
  for pkg in "$REPO"/packages/*/; do
    name="$(basename "$pkg")"
    [[ -f "$pkg/package.json" ]] || continue
    mkdir -p "$A/packages/$name"
    cp "$pkg/package.json" "$A/packages/$name/"
    [[ -d "$pkg/dist" ]] && cp -a "$pkg/dist" "$A/packages/$name/"
    # kindling-csi loads its gRPC schema at run time from proto/, next to dist/
    [[ -d "$pkg/proto" ]] && cp -a "$pkg/proto" "$A/packages/$name/"
    [[ -d "$pkg/node_modules" ]] && cp -a "$pkg/node_modules" "$A/packages/$name/"
  done
  # drop the heaviest build-only packages (compiler and bundler binaries) the agent never loads
  rm -rf "$A"/node_modules/.pnpm/@typescript+* "$A"/node_modules/.pnpm/typescript@* "$A"/node_modules/.pnpm/@rolldown+* \
    "$A"/node_modules/.pnpm/rolldown@* "$A"/node_modules/.pnpm/lightningcss* "$A"/node_modules/.pnpm/vite@* \
    "$A"/node_modules/.pnpm/vitest@* "$A"/node_modules/.pnpm/@vitest+*
fi

# The guest's network is qemu's user-mode NAT, reached only through port forwards on the host's
# loopback: no TLS there (allowPlaintext), as for any agent on a trusted network.
AGENT_GUEST_PORT=8600
EXEC_GUEST_PORT=8601
CRASH_GUEST_PORT=8602
CSI_GUEST_PORT=8603
cat >"$P/kindling.json" <<EOF
{
  "listen": { "host": "0.0.0.0", "port": $AGENT_GUEST_PORT },
  "allowPlaintext": true,
  "dataDir": "/var/lib/kindling",
  "token": "$TOKEN",
  "capacityRefreshSeconds": 86400,
  "backends": [
    { "name": "lvm-thick", "driver": "lvm", "volumeGroup": "kindling-thick", "lvmType": "default" },
    { "name": "lvm-thin", "driver": "lvm", "volumeGroup": "kindling-thin", "lvmType": "thin", "thinPool": "kindling-thin-pool" },
    { "name": "nfs", "driver": "nfs", "shares": ["127.0.0.1:/export"], "mountPointBase": "/var/lib/kindling/mnt", "format": "qcow2" },
    { "name": "suite-thick", "driver": "lvm", "volumeGroup": "kindling-suite-thick", "lvmType": "default" },
    { "name": "suite-thin", "driver": "lvm", "volumeGroup": "kindling-suite-thin", "lvmType": "thin", "thinPool": "kindling-suite-pool" },
    { "name": "suite-nfs", "driver": "nfs", "shares": ["127.0.0.1:/suite"], "mountPointBase": "/var/lib/kindling/mnt", "format": "qcow2" }
  ]
}
EOF
# The suite-* backends are cinderlib's functional suite's alone (one file each): it asserts a backend's
# totals (volume count, provisioned and free capacity), which any other scenario file creating volumes on the
# same VG or filesystem at the same time would change under it.
# The main agent never refreshes capacity on a timer: the cached-vs-refresh scenario asserts what the cache
# holds between explicit refreshes, and a periodic refresh landing inside it made it flaky.
# The crash scenarios' own agent (started, killed and restarted by them through crash-agent.sh), on its own VGs.
# It runs each lvm2 command as a process (lvmShell: false): its faults are injected by a shim per command name
# (stall-shim.sh), which a command sent to the lvm shell never passes through; the shell's own death with the
# agent and its kill at a timeout are tested on the host (drivers/lvm/shell.lvm.test.ts).
cat >"$P/kindling-crash.json" <<EOF
{
  "listen": { "host": "0.0.0.0", "port": $CRASH_GUEST_PORT },
  "allowPlaintext": true,
  "dataDir": "/var/lib/kindling-crash",
  "token": "$TOKEN",
  "backends": [
    { "name": "crash-thick", "driver": "lvm", "volumeGroup": "kindling-crash-thick", "lvmType": "default", "lvmShell": false },
    { "name": "crash-thin", "driver": "lvm", "volumeGroup": "kindling-crash-thin", "lvmType": "thin", "thinPool": "kindling-crash-pool", "lvmShell": false }
  ]
}
EOF
# --shell runs the agent in the guest too (the guest's own "shell" mode has no agent: the host would wait)
GUEST_MODE=agent
[[ "$MODE" == smoke ]] && GUEST_MODE=smoke
cat >"$P/lane.env" <<EOF
KL_MODE=$GUEST_MODE
KL_TOKEN=$TOKEN
KL_AGENT_PORT=$AGENT_GUEST_PORT
KL_EXEC_PORT=$EXEC_GUEST_PORT
KL_CSI_PORT=$CSI_GUEST_PORT
KL_VG_THICK=kindling-thick
KL_VG_THIN=kindling-thin
KL_THIN_POOL=kindling-thin-pool
KL_PRECREATE_THIN_POOL=1
EOF

payload_mb=$(($(du -sm "$P" | cut -f1) * 6 / 5 + 32))
mkfs.ext4 -q -F -L kl-payload -O ^has_journal -E lazy_itable_init=0 -d "$P" "$RUN/payload.img" "${payload_mb}M" >/dev/null \
  || die "could not make the payload disk"
rm -rf "$P"
# fresh sparse disks: 16 GiB VG disks (thick, thin, the suite's thick and thin, the crash agent's two), 16 GiB
# ext4 export disks (the shared one, the suite's), a small output disk
truncate -s 16G "$RUN/vg-thick.img" "$RUN/vg-thin.img" "$RUN/vg-suite-thick.img" "$RUN/vg-suite-thin.img" \
  "$RUN/vg-crash-thick.img" "$RUN/vg-crash-thin.img" "$RUN/export.img" "$RUN/suite-export.img"
truncate -s 64M "$RUN/out.img"
for fs in export suite-export; do
  mkfs.ext4 -q -F -L "kl-$fs" -i 1048576 -E lazy_itable_init=0,lazy_journal_init=0 "$RUN/$fs.img" >/dev/null
done
T_PAYLOAD=$((SECONDS - t))

free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
PORT="$(free_port)"
EXEC_PORT="$(free_port)"
while [[ "$EXEC_PORT" == "$PORT" ]]; do EXEC_PORT="$(free_port)"; done
CRASH_PORT="$(free_port)"
while [[ "$CRASH_PORT" == "$PORT" || "$CRASH_PORT" == "$EXEC_PORT" ]]; do CRASH_PORT="$(free_port)"; done
CSI_PORT="$(free_port)"
while [[ "$CSI_PORT" == "$PORT" || "$CSI_PORT" == "$EXEC_PORT" || "$CSI_PORT" == "$CRASH_PORT" ]]; do CSI_PORT="$(free_port)"; done

# --- 3. boot ---
disk() { # disk FILE SERIAL [extra drive options]
  printf '%s\n' -drive "file=$1,format=raw,if=none,id=$2${3:+,$3}" -device "virtio-blk-pci,drive=$2,serial=$2"
}
mapfile -t DISKS < <(
  disk "$IMG/root.img" kl-root "snapshot=on,cache=unsafe"
  disk "$RUN/payload.img" kl-payload "readonly=on"
  disk "$RUN/vg-thick.img" kl-vg-thick "cache=unsafe,discard=unmap"
  disk "$RUN/vg-thin.img" kl-vg-thin "cache=unsafe,discard=unmap"
  disk "$RUN/vg-suite-thick.img" kl-vg-suite-thick "cache=unsafe,discard=unmap"
  disk "$RUN/vg-suite-thin.img" kl-vg-suite-thin "cache=unsafe,discard=unmap"
  disk "$RUN/vg-crash-thick.img" kl-vg-crash-thick "cache=unsafe,discard=unmap"
  disk "$RUN/vg-crash-thin.img" kl-vg-crash-thin "cache=unsafe,discard=unmap"
  disk "$RUN/export.img" kl-export "cache=unsafe,discard=unmap"
  disk "$RUN/suite-export.img" kl-suite-export "cache=unsafe,discard=unmap"
  disk "$RUN/out.img" kl-out "cache=writeback"
)
# "kvm:tcg" means: try KVM, fall back to TCG
ACCEL_ARGS=()
IFS=: read -r -a accels <<<"$ACCEL"
for a in "${accels[@]}"; do ACCEL_ARGS+=(-accel "$a"); done
CPU="${KINDLING_KERNEL_CPU:-max}"
[[ "$ACCEL" == kvm && -z "${KINDLING_KERNEL_CPU:-}" ]] && CPU=host
CONSOLE="$RUN/console.log"
: >"$CONSOLE"
t_boot=$SECONDS
qemu-system-x86_64 \
  "${ACCEL_ARGS[@]}" \
  -machine pc -cpu "$CPU" -m 2048 -smp 2 \
  -nodefaults -display none -no-reboot -monitor none \
  -serial "file:$CONSOLE" \
  -kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img" \
  -append "console=ttyS0 panic=-1 loglevel=4 mitigations=off" \
  "${DISKS[@]}" \
  -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$PORT-:$AGENT_GUEST_PORT,hostfwd=tcp:127.0.0.1:$EXEC_PORT-:$EXEC_GUEST_PORT,hostfwd=tcp:127.0.0.1:$CRASH_PORT-:$CRASH_GUEST_PORT,hostfwd=tcp:127.0.0.1:$CSI_PORT-:$CSI_GUEST_PORT" \
  -device virtio-net-pci,netdev=n0,romfile= \
  >"$RUN/qemu.log" 2>&1 &
QEMU_PID=$!
log "qemu started (pid $QEMU_PID, accel $ACCEL, mode $MODE); console: $CONSOLE"

console_tail() {
  log "---- guest console (last ${1:-60} lines) ----"
  tail -n "${1:-60}" "$CONSOLE" | sed 's/^/  | /' >&2 || true
  if [[ -s "$RUN/qemu.log" ]]; then log "---- qemu ----"; sed 's/^/  | /' "$RUN/qemu.log" >&2; fi
}
guest_time() { grep -a -m1 "$1" "$CONSOLE" | sed -n 's/^\[guest *\([0-9.]*\)\].*/\1/p'; }
summary() {
  {
    echo "image (build or reuse): ${T_IMAGE}s"
    echo "payload + disks: ${T_PAYLOAD}s"
    echo "boot to infra ready (guest clock): $(guest_time KL-INFRA-READY)s"
    [[ -n "${T_READY:-}" ]] && echo "qemu start to agent /healthz on host: ${T_READY}s"
    if [[ "$MODE" == smoke ]]; then
      [[ -n "${T_TESTS:-}" ]] && echo "VM run (boot + smoke checks + power-off): ${T_TESTS}s"
    else
      [[ -n "${T_TESTS:-}" ]] && echo "tests (vitest): ${T_TESTS}s"
    fi
    echo "whole lane: $((SECONDS - LANE_START))s"
  } | tee "$RUN/timings.txt" | sed 's/^/kernel-lane: timing: /' >&2
}

if [[ "$MODE" == smoke ]]; then
  while kill -0 "$QEMU_PID" 2>/dev/null; do
    if ((SECONDS >= DEADLINE)); then console_tail; die "timeout: the smoke run took more than ${LANE_TIMEOUT}s"; fi
    sleep 1
  done
  wait "$QEMU_PID" || true
  QEMU_PID=
  T_TESTS=$((SECONDS - t_boot))
  read_out || true
  sed -n 's/^\[guest *[0-9.]*\] //p' "$CONSOLE" | grep -a -E '^(PASS|FAIL|SMOKE-RESULT|KL-)' >&2 || true
  results="$RUN/out/results.txt"
  [[ -f "$results" ]] || { console_tail 80; die "the guest returned no results (see the console above)"; }
  cp "$results" "$RUN/results.txt"
  cat "$results"
  summary
  line="$(grep '^SMOKE-RESULT' "$results" || true)"
  [[ -n "$line" ]] || { console_tail 80; die "smoke run did not finish"; }
  grep -q '^FAIL' "$results" && { console_tail 80; die "smoke checks failed"; }
  npass="$(grep -c '^PASS' "$results")"
  ((npass >= 22)) || die "only $npass smoke checks passed"
  log "smoke lane passed: $line"
  printf '%s passed, 0 failed\n' "$npass"
  exit 0
fi

# agent / shell mode: wait for the agent's /healthz through the forwarded port
boot_deadline=$((SECONDS + BOOT_TIMEOUT))
((boot_deadline < DEADLINE)) || boot_deadline=$DEADLINE
until curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null; do
  if ! kill -0 "$QEMU_PID" 2>/dev/null; then
    QEMU_PID=; read_out || true; console_tail 80; die "the VM stopped before the agent answered /healthz"
  fi
  if grep -a -q 'KL-FATAL\|KL-AGENT-EXITED' "$CONSOLE"; then read_out || true; console_tail 80; die "the guest could not start the agent"; fi
  if ((SECONDS >= boot_deadline)); then console_tail 80; die "timeout: no /healthz on 127.0.0.1:$PORT after $((SECONDS - t_boot))s"; fi
  sleep 1
done
T_READY=$((SECONDS - t_boot))
log "agent ready on ws://127.0.0.1:$PORT after ${T_READY}s"

export KINDLING_KERNEL_URL="ws://127.0.0.1:$PORT"
export KINDLING_KERNEL_HTTP="http://127.0.0.1:$PORT"
export KINDLING_KERNEL_TOKEN="$TOKEN"
export KINDLING_KERNEL_EXEC_URL="http://127.0.0.1:$EXEC_PORT"
export KINDLING_KERNEL_CRASH_URL="ws://127.0.0.1:$CRASH_PORT"
# the CSI node plugin the csi-* scenarios start in the guest (gRPC over TCP, no scheme)
export KINDLING_KERNEL_CSI_URL="127.0.0.1:$CSI_PORT"

if [[ "$MODE" == shell ]]; then
  log "shell mode: KINDLING_KERNEL_URL=$KINDLING_KERNEL_URL KINDLING_KERNEL_TOKEN=$TOKEN KINDLING_KERNEL_EXEC_URL=$KINDLING_KERNEL_EXEC_URL KINDLING_KERNEL_CSI_URL=$KINDLING_KERNEL_CSI_URL"
  log "Ctrl-C (or the lane timeout, $(left)s left) stops the VM"
  while kill -0 "$QEMU_PID" 2>/dev/null && ((SECONDS < DEADLINE)); do sleep 2; done
  exit 0
fi

VITEST="$REPO/node_modules/.bin/vitest"
[[ -x "$VITEST" ]] || die "vitest is not installed (node_modules/.bin/vitest): run pnpm install"
remaining=$(left)
((remaining > 10)) || die "timeout: no time left for the tests"
t=$SECONDS
set +e
timeout --kill-after=10 "$remaining" "$VITEST" run --root "$REPO/test-kernel" \
  --reporter=default --reporter="$REPO/test/support/summary-reporter.ts" --reporter=junit --outputFile.junit="$RUN/junit.xml" \
  "${VITEST_ARGS[@]}"
rc=$?
set -e
T_TESTS=$((SECONDS - t))
if ((rc == 124 || rc == 137)); then
  console_tail 60; summary; die "timeout: the scenarios did not finish within the lane's ${LANE_TIMEOUT}s"
fi
if ((rc != 0)); then
  console_tail 60; summary; die "scenarios failed (vitest exit $rc)"
fi
summary
log "kernel lane passed"
