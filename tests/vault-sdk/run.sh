#!/usr/bin/env bash
# run.sh - the Go tests that host the plugin with HashiCorp's own code (vault/sdk + go-plugin).
#
#   PLUGIN_BIN=target/debug/vault-plugin-secrets-litellm tests/vault-sdk/run.sh [go test args...]
#
# Needs Go (go.mod's version or newer; an older Go fetches the right toolchain through the Go
# module proxy) and a running LiteLLM: LITELLM_BASE_URL + LITELLM_MASTER_KEY, else the env
# file scripts/run-litellm.sh writes (${LITELLM_HOME:-/tmp/litellm-local}/env). Downloads the
# modules pinned by go.sum through the proxy into the module cache (GOMODCACHE, default
# $GOPATH/pkg/mod; /tmp/vault-sdk-gomodcache when that is not writable), then runs gofmt,
# go vet and go test. Exits non-zero on any failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CALLER_PWD=$PWD
cd "$HERE"
log() { printf '[vault-sdk] %s\n' "$*" >&2; }

command -v go >/dev/null || {
  log "Go is not installed (need go $(sed -n 's/^go //p' go.mod) or newer, or any Go with the module proxy reachable)"
  exit 1
}

PLUGIN_BIN=${PLUGIN_BIN:-}
if [ -z "$PLUGIN_BIN" ]; then
  log "PLUGIN_BIN is not set: build the plugin (cargo build) and pass target/debug/vault-plugin-secrets-litellm"
  exit 1
fi
case "$PLUGIN_BIN" in /*) ;; *) PLUGIN_BIN="$CALLER_PWD/$PLUGIN_BIN" ;; esac
[ -x "$PLUGIN_BIN" ] || { log "PLUGIN_BIN=$PLUGIN_BIN is not an executable file"; exit 1; }
export PLUGIN_BIN

if [ -z "${LITELLM_BASE_URL:-}" ] || [ -z "${LITELLM_MASTER_KEY:-}" ]; then
  envfile="${LITELLM_HOME:-/tmp/litellm-local}/env"
  if [ -r "$envfile" ]; then
    # shellcheck disable=SC1090 # written by scripts/run-litellm.sh start
    . "$envfile"
  fi
fi
export LITELLM_BASE_URL LITELLM_MASTER_KEY # the tests fail with a clear message if unset

modcache=$(go env GOMODCACHE)
if ! mkdir -p "$modcache" 2>/dev/null || [ ! -w "$modcache" ]; then
  export GOMODCACHE=/tmp/vault-sdk-gomodcache
  log "module cache $modcache is not writable; using $GOMODCACHE"
fi
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

go version
log "downloading modules (go.sum pins them)"
go mod download
go mod verify >/dev/null

rc=0
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  log "gofmt: not formatted: $unformatted"
  rc=1
fi
go vet ./... || rc=1
log "go test (PLUGIN_BIN=$PLUGIN_BIN, LITELLM_BASE_URL=${LITELLM_BASE_URL:-<unset>})"
go test -count=1 -timeout 5m "$@" ./... || rc=1
exit "$rc"
