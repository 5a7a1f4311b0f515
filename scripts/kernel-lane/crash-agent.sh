#!/bin/bash
# Kernel lane, test-only: a second Kindling agent in the guest that the crash scenarios kill and restart
# (its own VGs kindling-crash-thick/-thin, data dir and port, so the other scenarios never notice).
#   crash-agent.sh start [stall-transfer]     start it (commands through the stall shim) and wait for /healthz;
#                                             stall-transfer: its transfers stop after their first data record
#   crash-agent.sh kill                       SIGKILL the agent with its whole process group (its commands too)
#   crash-agent.sh stall ID CMD WHEN REGEX    stall the next CMD whose arguments match REGEX (see stall-shim.sh)
#   crash-agent.sh stalled ID [SECONDS]       wait until rule ID has stalled its command
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
KL=/opt/kindling
RUN=/run/kl-crash
STALL=/run/kl-stall
SHIM=/run/kl-shim
PORT="${KL_CRASH_PORT:-8602}"
mkdir -p "$RUN" "$STALL"/rules "$STALL"/claimed "$STALL"/hit "$SHIM"

case "${1:-}" in
  start)
    for c in dd lvconvert lvrename lvremove; do
      ln -sf "$KL/stall-shim.sh" "$SHIM/$c"
    done
    mkdir -p /var/lib/kindling-crash
    healthy() { "$KL/bin/node" -e "fetch('http://127.0.0.1:$PORT/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))" 2>/dev/null; }
    # another one still serving would answer the wait below while this one dies on the index's lock
    if healthy; then
      echo "a crash agent is already running (pid $(cat "$RUN/agent.pid" 2>/dev/null)): kill it first" >&2
      exit 1
    fi
    # setsid: the agent leads its own process group, so `kill` takes its commands with it
    cd "$KL/app"
    # test-only (transfer/source.ts): a copy's source sends one data record, then waits for the target to go
    stall_transfer=
    [[ "${2:-}" == stall-transfer ]] && stall_transfer=after-first
    KINDLING_TRANSFER_STALL="$stall_transfer" PATH="$SHIM:$PATH" setsid -f /bin/sh -c "echo \$\$ >$RUN/agent.pid; exec $KL/bin/node packages/agent/dist/bin.js --config /etc/kindling-crash.json" \
      >>/run/kl-out/crash-agent.log 2>&1 </dev/null
    for _ in $(seq 1 600); do
      if healthy; then
        exit 0
      fi
      sleep 0.5
    done
    echo "the crash agent did not answer /healthz; its log:" >&2
    tail -n 30 /run/kl-out/crash-agent.log >&2
    exit 1
    ;;
  kill)
    [[ -f "$RUN/agent.pid" ]] || exit 0  # never started
    pid="$(cat "$RUN/agent.pid")"
    kill -KILL -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
    echo "agent $pid still running" >&2
    exit 1
    ;;
  stall)
    printf '%s\t%s\t%s\n' "$3" "$4" "$5" >"$STALL/$2.tmp"
    mv "$STALL/$2.tmp" "$STALL/rules/$2"
    ;;
  stalled)
    for _ in $(seq 1 $((${3:-120} * 2))); do
      [[ -f "$STALL/hit/$2" ]] && { cat "$STALL/hit/$2"; exit 0; }
      sleep 0.5
    done
    echo "rule $2 stalled nothing; rules left: $(ls "$STALL/rules")" >&2
    exit 1
    ;;
  *)
    sed -n '2,8p' "$0" >&2
    exit 2
    ;;
esac
