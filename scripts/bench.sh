#!/usr/bin/env bash
# bench.sh - measure the plugin against its physical limits (see tests/bench/creds.rs).
#
#   scripts/bench.sh            full run (about 2-4 minutes on 2 cores)
#   BENCH_SCALE=0.1 scripts/bench.sh    quick smoke run
#
# Installs OpenBao if needed; uses the real LiteLLM too when LITELLM_BASE_URL and
# LITELLM_MASTER_KEY are set (e.g. `. /tmp/litellm-local/env` after scripts/run-litellm.sh).
# Prints a table and writes bench-results/bench-<time>-<commit>.json.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BAO_BIN=${BAO_BIN:-$("$ROOT/scripts/install-openbao.sh")}
export BAO_BIN
exec cargo bench --bench creds
