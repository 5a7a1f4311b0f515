#!/usr/bin/env bash
# Quick start on a fresh machine: install what is missing, build, start the agent on its embedded
# default and run a short SDK demo. Extra arguments go to kindling-agent (e.g. --port 8700).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
pnpm build
exec node scripts/demo.mjs "$@"
