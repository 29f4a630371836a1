#!/usr/bin/env bash
# The whole test suite: installs what the tests talk to, builds, runs unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
[ -d node_modules ] || npm ci
npm run build --silent
npx vitest run "$@"
