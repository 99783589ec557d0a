#!/usr/bin/env bash
# node-deps.sh: install the pinned npm packages the real-client tests use
# (tests/node/package-lock.json). Skips the network when they are present.
set -euo pipefail
cd "$(dirname "$0")/../tests/node"
[ -f package.json ] || exit 0
if [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  exit 0
fi
echo "node-deps: npm ci in tests/node"
npm ci --no-audit --no-fund --loglevel=error
