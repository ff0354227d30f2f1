#!/usr/bin/env bash
# bench.sh - measure the plugin against its physical limits (see tests/bench/creds.rs).
#
#   scripts/bench.sh            full run (about 2-4 minutes on 2 cores)
#   BENCH_SCALE=0.1 scripts/bench.sh    quick smoke run
#
# Installs OpenBao if needed; uses the real LiteLLM too when LITELLM_BASE_URL and
# LITELLM_MASTER_KEY are set (e.g. `. /tmp/litellm-local/env` after scripts/run-litellm.sh).
# Prints a table and writes bench-results/bench-<time>-<commit>.json.
#
# Peers (tests/bench/peers.rs): Go plugins built on HashiCorp's SDK, measured in the same run
# under the same OpenBao. Built or installed here into .tools/peers/, each skipped with the
# reason printed when Go or the module proxy cannot provide it; BENCH_PEERS=0 skips them all.
#   sdk      tests/vault-sdk/cmd/peer-plugin (this repository's minimal framework.Backend)
#   benemon  go install github.com/benemon/vault-plugin-secrets-litellm/cmd/...@<newest tag>
#   clique   go install github.com/clique-it-tech/vault-plugin-secrets-litellm/cmd/...@<newest tag>
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BAO_BIN=${BAO_BIN:-$("$ROOT/scripts/install-openbao.sh")}
export BAO_BIN

PEERS_DIR="$ROOT/.tools/peers"
export BENCH_PEERS_FILE="$PEERS_DIR/peers.tsv"
mkdir -p "$PEERS_DIR"
: >"$BENCH_PEERS_FILE"
# One line per peer: name, "ok" or "skipped", binary path or reason, what was built.
peer() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >>"$BENCH_PEERS_FILE"; }
skip() { printf '[bench] peer %s skipped: %s\n' "$1" "$2" >&2; peer "$1" skipped "$2" "${3:-}"; }
# The first line of a Go error without the proxy's URL, for the table and the JSON.
goerr() { head -n 3 | tr '\n\t' '  ' | sed -E 's#https?://[^ ]*##g; s/ +/ /g' | cut -c1-200; }

published() { # name module
  local name=$1 module=$2 out tag
  # The module's go line may need a newer Go than the machine's (benemon: 1.27.1).
  if ! out=$(GOTOOLCHAIN=go1.27.3 timeout 120 go list -m -versions "$module" 2>&1); then
    skip "$name" "the Go module proxy does not serve $module ($(goerr <<<"$out"))" "$module"
    return
  fi
  tag=$(awk '{print $NF}' <<<"$out")
  if [ "$tag" = "$module" ]; then
    skip "$name" "the Go module proxy lists no tagged version of $module" "$module"
    return
  fi
  if ! out=$(GOBIN="$PEERS_DIR/$name" GOTOOLCHAIN=go1.27.3 timeout 600 \
    go install "$module/cmd/vault-plugin-secrets-litellm@$tag" 2>&1); then
    skip "$name" "go install $module/cmd/vault-plugin-secrets-litellm@$tag failed ($(goerr <<<"$out"))" "$module@$tag"
    return
  fi
  peer "$name" ok "$PEERS_DIR/$name/vault-plugin-secrets-litellm" "$module@$tag"
}

if [ "${BENCH_PEERS:-1}" = 0 ]; then
  printf '[bench] BENCH_PEERS=0: no Go peers\n' >&2
elif ! command -v go >/dev/null; then
  for name in sdk benemon clique; do skip "$name" "Go is not installed"; done
else
  sdk_version=$(go -C tests/vault-sdk list -m -f '{{.Version}}' github.com/hashicorp/vault/sdk 2>/dev/null) || sdk_version=unknown
  if out=$(cd tests/vault-sdk && GOFLAGS=-mod=readonly timeout 600 \
    go build -trimpath -o "$PEERS_DIR/sdk/peer-plugin" ./cmd/peer-plugin 2>&1); then
    peer sdk ok "$PEERS_DIR/sdk/peer-plugin" "tests/vault-sdk/cmd/peer-plugin, vault/sdk $sdk_version, $(go env GOVERSION)"
  else
    skip sdk "go build ./cmd/peer-plugin failed ($(goerr <<<"$out"))"
  fi
  published benemon github.com/benemon/vault-plugin-secrets-litellm
  published clique github.com/clique-it-tech/vault-plugin-secrets-litellm
fi

exec cargo bench --bench creds
