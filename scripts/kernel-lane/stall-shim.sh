#!/bin/bash
# Kernel lane, test-only: stands in for a command (dd, lvrename, lvconvert, ...) first on the crash agent's
# PATH (/run/kl-shim/<command> links here). A rule in /run/kl-stall/rules/<rule> ("command<TAB>when<TAB>regex",
# written by crash-agent.sh stall) stalls the first call whose arguments match the regex, once:
#   before  the command never runs          after  it runs to its end first
#   during  it runs in the background for a moment (a copy or a zeroing halfway)
# then /run/kl-stall/hit/<rule> appears and the call never returns, until the test kills the agent's group.
name="${0##*/}"
dir=/run/kl-stall
PATH="${PATH//\/run\/kl-shim:/}"
for rule in "$dir"/rules/*; do
  [[ -f "$rule" ]] || continue
  IFS=$'\t' read -r cmd when regex <"$rule"
  [[ "$cmd" == "$name" && "$*" =~ $regex ]] || continue
  id="${rule##*/}"
  # claimed by one call only, even when two run at once
  mv "$rule" "$dir/claimed/$id" 2>/dev/null || continue
  case "$when" in
    after) "$name" "$@" ;;
    # the copy dies with this call however the agent kills it (its group, or the parent-death signal)
    during) setpriv --pdeathsig KILL -- "$name" "$@" & sleep "${KL_STALL_DURING_S:-2}" ;;
  esac
  echo "$*" >"$dir/hit/$id"
  exec sleep infinity
done
exec "$name" "$@"
