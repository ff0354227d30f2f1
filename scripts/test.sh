#!/usr/bin/env bash
# test.sh - run every check and test, installing what they need (fresh machine: rustup's cargo,
# python3 + pip, node + npm, apt).
#
#   1. install OpenBao (scripts/install-openbao.sh) and start a real LiteLLM + PostgreSQL
#      (scripts/run-litellm.sh ensure) unless LITELLM_BASE_URL + LITELLM_MASTER_KEY are set
#   2. cargo fmt --check; cargo clippy --all-targets -D warnings; the upgrade tests (which build
#      the previous release first), then cargo test --all-targets (tests/ holds the end-to-end
#      tests against real OpenBao and LiteLLM)
#   3. scripts/dev.sh --once on a free port: smoke test of the main job
#
# Exports BAO_BIN, LITELLM_BASE_URL, LITELLM_MASTER_KEY for the tests. Stops LiteLLM at the end
# only if this script started it. Exits non-zero if anything failed; all check steps run even
# after a failure, so one run shows every problem.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

T0=$SECONDS
STARTED_LITELLM=0
SUMMARY=()
FAILED=0

log() { printf '[test] %s\n' "$*" >&2; }
section() { printf '\n==================== %s  (t+%ds) ====================\n' "$*" $((SECONDS - T0)); }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$STARTED_LITELLM" = 1 ]; then
    section "stopping the LiteLLM proxy started by this script"
    "$ROOT/scripts/run-litellm.sh" stop || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a check step, records its result and time, and carries on after a failure.
step() {  # name cmd...
  local name=$1 t rc=0
  shift
  section "$name"
  t=$SECONDS
  "$@" || rc=$?
  t=$((SECONDS - t))
  if [ "$rc" = 0 ]; then
    SUMMARY+=("$(printf '  %-34s ok      %5ds' "$name" "$t")")
  else
    SUMMARY+=("$(printf '  %-34s FAILED  %5ds  (exit %d)' "$name" "$t" "$rc")")
    FAILED=$((FAILED + 1))
  fi
  log "$name: $([ "$rc" = 0 ] && echo ok || echo "FAILED (exit $rc)") after ${t}s"
}

# Setup steps must succeed; nothing after them makes sense otherwise.
setup() {  # name cmd...
  local name=$1 t
  shift
  section "$name"
  t=$SECONDS
  "$@"
  SUMMARY+=("$(printf '  %-34s ok      %5ds' "$name" $((SECONDS - t)))")
}

# --- setup -----------------------------------------------------------------------------------
prereqs() {
  command -v cargo >/dev/null || { log "cargo not found (install Rust with rustup)"; return 1; }
  cargo --version
  local comp
  for comp in rustfmt clippy; do
    if ! cargo "${comp/rustfmt/fmt}" --version >/dev/null 2>&1; then
      log "installing the $comp component"
      rustup component add "$comp"
    fi
  done
  # run-litellm.sh polls the proxy with curl; minimal Debian images lack it.
  if ! command -v curl >/dev/null && [ "$(id -u)" = 0 ]; then
    log "installing curl (apt-get)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
  fi
  python3 --version
}

install_openbao() {
  BAO_BIN=$("$ROOT/scripts/install-openbao.sh")
  export BAO_BIN
  "$BAO_BIN" version
}

start_litellm() {
  if [ -n "${LITELLM_BASE_URL:-}" ] && [ -n "${LITELLM_MASTER_KEY:-}" ]; then
    log "using LITELLM_BASE_URL=$LITELLM_BASE_URL from the environment"
    return 0
  fi
  # ensure prints the exports and LITELLM_ENSURE_STARTED (1: it started the proxy, so cleanup
  # stops it). A failed start it began is stopped by ensure itself.
  # New session: a Ctrl-C on this terminal must not kill the proxy before cleanup stops it.
  local exports
  if command -v setsid >/dev/null; then
    exports=$(setsid "$ROOT/scripts/run-litellm.sh" ensure)
  else
    exports=$("$ROOT/scripts/run-litellm.sh" ensure)
  fi
  eval "$exports"
  STARTED_LITELLM=${LITELLM_ENSURE_STARTED:-0}
  [ "$STARTED_LITELLM" = 1 ] || log "LiteLLM already running; leaving it running afterwards"
  export LITELLM_BASE_URL LITELLM_MASTER_KEY
}

setup "prerequisites" prereqs
setup "install OpenBao" install_openbao
setup "start LiteLLM + PostgreSQL" start_litellm
log "BAO_BIN=$BAO_BIN"
log "LITELLM_BASE_URL=$LITELLM_BASE_URL"

# --- checks ----------------------------------------------------------------------------------
lint_scripts() {
  # Explicit returns: errexit is off inside a function called from `cmd || rc=$?`.
  local files=(scripts/install-openbao.sh scripts/dev.sh scripts/test.sh scripts/run-litellm.sh
    scripts/bench.sh scripts/release.sh .ci/run) f
  for f in "${files[@]}"; do bash -n "$f" || return 1; done
  if command -v shellcheck >/dev/null; then
    shellcheck "${files[@]}" || return 1
  else
    log "shellcheck not installed: only 'bash -n' was run"
  fi
  # The query-engine shim run-litellm.sh installs: a syntax error would only show at proxy start.
  node --check scripts/litellm/qe-shim/server.mjs || return 1
}

step "shellcheck scripts" lint_scripts
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy -D warnings" cargo clippy --all-targets -- -D warnings
# The upgrade tests first and on their own: their first run builds the previous release
# (tests/support/previous_release.rs, minutes on two cores), which must not compete with the
# timing-sensitive tests for the CPU.
step "cargo test: upgrade from the previous release" cargo test --test e2e upgrade::
step "cargo test --all-targets" cargo test --all-targets -- --skip upgrade::
step "Go tests on HashiCorp's sdk" env PLUGIN_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/vault-plugin-secrets-litellm" "$ROOT/tests/vault-sdk/run.sh"
# A free port, so a developer's own dev server on 8200 is not in the way.
step "scripts/dev.sh --once (main job)" env BAO_PORT=0 "$ROOT/scripts/dev.sh" --once </dev/null

# --- summary ---------------------------------------------------------------------------------
section "summary"
printf '%s\n' "${SUMMARY[@]}"
printf '  %-34s         %5ds\n' "total" $((SECONDS - T0))
if [ "$FAILED" -ne 0 ]; then
  log "$FAILED step(s) FAILED"
  exit 1
fi
log "all steps passed"
