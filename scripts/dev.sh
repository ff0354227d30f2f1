#!/usr/bin/env bash
# dev.sh - the main job: build the plugin, run it in a local OpenBao dev server against a real
# LiteLLM proxy, and issue a LiteLLM virtual key through `bao read litellm/creds/demo`.
#
#   scripts/dev.sh [--keep|--once] [--no-build]
#
#   --keep      keep everything running until Ctrl-C (default when stdin is a terminal)
#   --once      issue a credential, check it works in LiteLLM, revoke it, check it no longer
#               works, stop everything, exit 0 (default otherwise; used by scripts/test.sh/CI)
#   --no-build  skip `cargo build --release` (uses the existing release binary)
#
# Environment (all optional):
#   BAO_PORT / VAULT_PORT       listen port (default 8200; 0 or "auto" = pick a free one).
#                               Dev mode also takes port+1 for its cluster listener.
#   BAO_BIN                     `bao` binary to use (default: scripts/install-openbao.sh)
#   BAO_DEV_ROOT_TOKEN_ID / VAULT_DEV_ROOT_TOKEN_ID   root token (default "root")
#   BAO_LOG_LEVEL / VAULT_LOG_LEVEL                   server log level (default debug)
#   PLUGIN_BIN                  prebuilt plugin binary (skips the build)
#   LITELLM_BASE_URL + LITELLM_MASTER_KEY   use this LiteLLM instead of scripts/run-litellm.sh
#   KEEP_LITELLM=1              leave a LiteLLM proxy that this script started running
#
# Everything listens on 127.0.0.1 only. Every process started here is stopped on exit; on exit
# the mount is disabled first, which revokes the leases, so no issued key outlives the run.

# shellcheck disable=SC2317 # cleanup and its helpers run from traps
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PLUGIN_NAME=vault-plugin-secrets-litellm
MOUNT=litellm
ROLE=demo
HOST=127.0.0.1

MODE=
BUILD=1
for arg in "$@"; do
  case "$arg" in
    --keep) MODE=keep ;;
    --once) MODE=once ;;
    --no-build) BUILD=0 ;;
    -h|--help) awk 'NR > 1 && /^#( |$)/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "dev.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done
# Interactive users get a server to play with; CI and scripts (no terminal) get a clean exit.
if [ -z "$MODE" ]; then
  if [ -t 0 ]; then MODE=keep; else MODE=once; fi
fi

PORT=${BAO_PORT:-${VAULT_PORT:-8200}}
ROOT_TOKEN=${BAO_DEV_ROOT_TOKEN_ID:-${VAULT_DEV_ROOT_TOKEN_ID:-root}}
LOG_LEVEL=${BAO_LOG_LEVEL:-${VAULT_LOG_LEVEL:-debug}}

log() { printf '[dev] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
STEP="start-up"
step() { STEP=$*; printf '\n[dev] ==> %s\n' "$*" >&2; }

# --- cleanup (runs on every exit) -----------------------------------------------------------
WORK=
BAO_PID=
MOUNTED=0
STARTED_LITELLM=0

plugin_pids() {  # processes whose executable lives in our plugin dir
  local p exe
  [ -n "$WORK" ] || return 0
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    case "${exe% (deleted)}" in "$WORK/plugins/"*) echo "${p#/proc/}" ;; esac
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  set +e
  if [ "$rc" -ne 0 ]; then
    log "FAILED during: $STEP (exit $rc)"
    if [ -n "$WORK" ] && [ -f "$WORK/bao.log" ]; then
      log "last 40 lines of the OpenBao log ($WORK/bao.log):"
      tail -n 40 "$WORK/bao.log" | cut -c1-400 >&2
    fi
  fi
  if [ -n "$BAO_PID" ] && kill -0 "$BAO_PID" 2>/dev/null; then
    if [ "$MOUNTED" = 1 ]; then
      # Disabling the mount revokes its leases: the plugin deletes the keys it issued.
      log "disabling $MOUNT/ (revokes its leases)"
      timeout 60 "$BAO" secrets disable "$MOUNT/" >/dev/null 2>&1 || log "warning: secrets disable failed"
    fi
    log "stopping OpenBao (pid $BAO_PID)"
    kill -TERM "$BAO_PID" 2>/dev/null
    for _ in $(seq 1 40); do kill -0 "$BAO_PID" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$BAO_PID" 2>/dev/null
    wait "$BAO_PID" 2>/dev/null
  fi
  local leftovers
  leftovers=$(plugin_pids)
  if [ -n "$leftovers" ]; then
    log "killing leftover plugin processes: $(echo "$leftovers" | tr '\n' ' ')"
    # shellcheck disable=SC2086 # one pid per word
    kill -KILL $leftovers 2>/dev/null
  fi
  if [ "$STARTED_LITELLM" = 1 ]; then
    if [ "${KEEP_LITELLM:-}" = 1 ]; then
      log "leaving LiteLLM running (KEEP_LITELLM=1); stop it with scripts/run-litellm.sh stop"
    else
      log "stopping the LiteLLM proxy this script started"
      "$ROOT/scripts/run-litellm.sh" stop
    fi
  fi
  if [ -n "$WORK" ]; then
    if [ "$rc" -eq 0 ]; then rm -rf "$WORK"; else log "kept $WORK for inspection"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# A closed terminal (SIGHUP) ends the run like Ctrl-C. Its output must go elsewhere first: on a
# hung-up terminal every write fails, and a `set -e` child of the cleanup (run-litellm.sh stop)
# would die on its first log line, leaving LiteLLM and PostgreSQL running.
on_hangup() { exec >/dev/null 2>&1; exit "$1"; }
trap 'on_hangup 129' HUP

# Run in a new session so a Ctrl-C on this script's terminal reaches only this script: the
# cleanup trap must still be able to revoke leases through a live server and LiteLLM.
detached() { if command -v setsid >/dev/null 2>&1; then setsid "$@"; else "$@"; fi; }

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

free_port_pair() {  # a port P with P and P+1 free (dev mode puts the cluster listener on P+1)
  python3 - <<'PY'
import socket
for _ in range(200):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1))
    except OSError:
        continue
    finally:
        a.close(); b.close()
    print(p); break
PY
}

# GET url with a bearer token, no proxies; prints the HTTP status, then the body.
http_get() {
  python3 - "$1" "$2" <<'PY'
import sys, urllib.request, urllib.error
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
try:
    with opener.open(req, timeout=30) as r:
        print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
except OSError as e:
    print(0); print(e)
PY
}

# Prints the value at a dotted path (object keys, list indexes): strings as they are, other
# values as JSON, "" when the path is missing or null. No eval: the path is only walked.
json_field() {  # json_field data.key < json
  python3 -c '
import json, sys
v = json.load(sys.stdin)
for part in sys.argv[1].split("."):
    if isinstance(v, dict):
        v = v.get(part)
    elif isinstance(v, list) and part.isdigit() and int(part) < len(v):
        v = v[int(part)]
    else:
        v = None
print("" if v is None else v if isinstance(v, str) else json.dumps(v))' "$1"
}

# --- 1. build ---------------------------------------------------------------------------------
VERSION=$(sed -n '/^\[package\]/,/^\[/{s/^version *= *"\([^"]*\)".*/\1/p;}' "$ROOT/Cargo.toml" | head -n1)
[ -n "$VERSION" ] || die "cannot read the package version from Cargo.toml"
if [ -n "${PLUGIN_BIN:-}" ]; then
  [ -x "$PLUGIN_BIN" ] || die "PLUGIN_BIN=$PLUGIN_BIN is not an executable file"
else
  PLUGIN_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/$PLUGIN_NAME
  if [ "$BUILD" = 1 ]; then
    step "cargo build --release"
    t0=$SECONDS
    (cd "$ROOT" && cargo build --release)
    log "built in $((SECONDS - t0))s: $PLUGIN_BIN"
  fi
  [ -x "$PLUGIN_BIN" ] || die "$PLUGIN_BIN not found (build it, or drop --no-build)"
fi

# --- 2. OpenBao -------------------------------------------------------------------------------
step "OpenBao"
if [ -n "${BAO_BIN:-}" ]; then
  BAO=$BAO_BIN
  "$BAO" version >/dev/null 2>&1 || die "BAO_BIN=$BAO_BIN does not run"
else
  BAO=$("$ROOT/scripts/install-openbao.sh")
fi
log "$("$BAO" version)"

# --- 3. LiteLLM -------------------------------------------------------------------------------
step "LiteLLM"
if [ -n "${LITELLM_BASE_URL:-}" ] && [ -n "${LITELLM_MASTER_KEY:-}" ]; then
  log "using LITELLM_BASE_URL=$LITELLM_BASE_URL from the environment"
else
  # ensure prints the exports and LITELLM_ENSURE_STARTED (1: it started the proxy, so cleanup
  # stops it). A failed start it began is stopped by ensure itself.
  litellm_exports=$(detached "$ROOT/scripts/run-litellm.sh" ensure)
  eval "$litellm_exports"
  STARTED_LITELLM=${LITELLM_ENSURE_STARTED:-0}
  log "LiteLLM at $LITELLM_BASE_URL ($([ "$STARTED_LITELLM" = 1 ] && echo "started by this script" || echo "already running"))"
fi

# --- 4. OpenBao dev server --------------------------------------------------------------------
step "OpenBao dev server"
if [ "$PORT" = 0 ] || [ "$PORT" = auto ]; then PORT=$(free_port_pair); fi
case "$PORT" in ''|*[!0-9]*) die "bad port '$PORT' (BAO_PORT)" ;; esac
for p in "$PORT" $((PORT + 1)); do
  port_busy "$p" && die "$HOST:$p is already in use (dev mode needs $PORT and $((PORT + 1))); set BAO_PORT"
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/litellm-plugin-dev.XXXXXX")
mkdir "$WORK/plugins"
export BAO_ADDR="http://$HOST:$PORT" BAO_TOKEN="$ROOT_TOKEN"
export VAULT_ADDR="$BAO_ADDR" VAULT_TOKEN="$ROOT_TOKEN"
unset BAO_NAMESPACE VAULT_NAMESPACE BAO_FORMAT VAULT_FORMAT
# Start with an EMPTY plugin dir and -dev-plugin-init=false: dev mode would otherwise try to
# auto-register every file in it at start-up and abort if one fails its probes.
# -dev-no-store-token: don't overwrite the user's ~/.vault-token. The server runs in $WORK
# because plugins inherit its working directory.
start_bao() {  # extra args...
  local cmd=("$BAO" server -dev
    -dev-listen-address="$HOST:$PORT"
    -dev-root-token-id="$ROOT_TOKEN"
    -dev-plugin-dir="$WORK/plugins"
    -dev-no-store-token
    -log-level="$LOG_LEVEL" "$@")
  # setsid execs in place here (a background job is no group leader), so $! is bao's pid.
  command -v setsid >/dev/null 2>&1 && cmd=(setsid "${cmd[@]}")
  (cd "$WORK" && exec "${cmd[@]}" </dev/null >>"$WORK/bao.log" 2>&1) &
  BAO_PID=$!
}
wait_bao() {
  local i
  for i in $(seq 1 100); do
    "$BAO" status >/dev/null 2>&1 && return 0
    kill -0 "$BAO_PID" 2>/dev/null || return 1
    [ "$i" = 100 ] && die "bao server did not answer on $BAO_ADDR within 20s"
    sleep 0.2
  done
}
start_bao -dev-plugin-init=false
if ! wait_bao; then
  # The flag is hidden and version-specific; with the empty plugin dir it is not needed.
  grep -q 'flag provided but not defined: -dev-plugin-init' "$WORK/bao.log" || die "bao server exited during start-up"
  log "this bao has no -dev-plugin-init flag; relying on the empty plugin dir"
  start_bao
  wait_bao || die "bao server exited during start-up"
fi
log "OpenBao dev server at $BAO_ADDR (pid $BAO_PID, log $WORK/bao.log)"

# --- 5. register + enable ---------------------------------------------------------------------
step "register and enable $PLUGIN_NAME v$VERSION"
cp "$PLUGIN_BIN" "$WORK/plugins/$PLUGIN_NAME"
chmod 755 "$WORK/plugins/$PLUGIN_NAME"
SHA=$(sha256sum "$WORK/plugins/$PLUGIN_NAME" | cut -d' ' -f1)
"$BAO" plugin register -sha256="$SHA" -version="v$VERSION" secret "$PLUGIN_NAME"
"$BAO" secrets enable -path="$MOUNT" "$PLUGIN_NAME"
MOUNTED=1

# --- 6. configure -----------------------------------------------------------------------------
step "configure $MOUNT/config and role $MOUNT/roles/$ROLE"
"$BAO" write "$MOUNT/config" base_url="$LITELLM_BASE_URL" master_key="$LITELLM_MASTER_KEY"
"$BAO" write "$MOUNT/roles/$ROLE" models=fake-gpt max_budget=1 ttl=5m max_ttl=1h

# --- 7. issue a credential --------------------------------------------------------------------
step "read $MOUNT/creds/$ROLE"
CREDS=$("$BAO" read -format=json "$MOUNT/creds/$ROLE")
KEY=$(json_field data.key <<<"$CREDS")
KEY_ALIAS=$(json_field data.key_alias <<<"$CREDS")
LEASE_ID=$(json_field lease_id <<<"$CREDS")
LEASE_TTL=$(json_field lease_duration <<<"$CREDS")
[ -n "$KEY" ] || die "creds response has no data.key: $CREDS"
[ -n "$LEASE_ID" ] || die "creds response has no lease_id: $CREDS"

# The key must work against LiteLLM and be limited to the role's models.
step "check the key against LiteLLM"
resp=$(http_get "$LITELLM_BASE_URL/v1/models" "$KEY")
status=${resp%%$'\n'*}
[ "$status" = 200 ] || die "LiteLLM rejected the issued key (HTTP $status): ${resp#*$'\n'}"
models=$(json_field data <<<"${resp#*$'\n'}" 2>/dev/null || true)
case "$models" in *fake-gpt*) ;; *) die "issued key cannot see model fake-gpt: ${resp#*$'\n'}" ;; esac
case "$models" in *fake-claude*) die "issued key is not limited to the role's models: ${resp#*$'\n'}" ;; esac
log "LiteLLM accepts the key; models: fake-gpt"

cat <<EOF

==> Credential from $MOUNT/creds/$ROLE
    key:        $KEY
    key_alias:  $KEY_ALIAS
    lease_id:   $LEASE_ID
    lease:      ${LEASE_TTL}s

    export BAO_ADDR=$BAO_ADDR BAO_TOKEN=$ROOT_TOKEN
    export VAULT_ADDR=$BAO_ADDR VAULT_TOKEN=$ROOT_TOKEN
    export PATH="$(dirname "$BAO"):\$PATH"
EOF

if [ "$MODE" = once ]; then
  step "revoke the lease"
  "$BAO" lease revoke "$LEASE_ID"
  # Revocation must delete (or block) the key in LiteLLM: poll briefly for the proxy's cache.
  for i in $(seq 1 30); do
    resp=$(http_get "$LITELLM_BASE_URL/v1/models" "$KEY")
    status=${resp%%$'\n'*}
    [ "$status" != 200 ] && break
    [ "$i" = 30 ] && die "key still accepted by LiteLLM 15s after its lease was revoked"
    sleep 0.5
  done
  log "key rejected by LiteLLM after revocation (HTTP $status)"
  step "done: the main job works (issue -> use -> revoke)"
  exit 0
fi

cat <<EOF

==> OpenBao dev server with $PLUGIN_NAME v$VERSION is running at $BAO_ADDR (mount: $MOUNT/)
    LiteLLM: $LITELLM_BASE_URL     OpenBao log: $WORK/bao.log
    Try, in another shell (after the exports above):
      bao read $MOUNT/creds/$ROLE
      bao lease revoke $LEASE_ID

    Press Ctrl-C (or close the terminal) to stop: leases are revoked (their keys deleted from LiteLLM) and every
    process this script started is stopped.
EOF
STEP="running (waiting for Ctrl-C)"
# Ctrl-C is the normal way to end --keep: clean up and exit 0.
trap 'printf "\n"; log "stopping (signal received)"; exit 0' INT TERM
trap 'on_hangup 0' HUP
# `wait` returns early when a trapped signal arrives; the INT trap then exits via cleanup.
wait "$BAO_PID" || true
BAO_PID=
die "bao server exited unexpectedly"
