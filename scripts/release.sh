#!/usr/bin/env bash
# release.sh - build the release artifacts into dist/ (linux amd64):
#
#   dist/vault-plugin-secrets-litellm_<version>_linux_amd64.tar.gz   the binary, README.md,
#                                                                    LICENSE (if present)
#   dist/vault-plugin-secrets-litellm                                the binary alone
#   dist/vault-plugin-secrets-litellm_<version>.cdx.json              CycloneDX SBOM of the
#                                                                    Rust dependencies
#   dist/SHA256SUMS                                                  the three above
#
#   scripts/release.sh            build from this work tree (cargo build --release --locked)
#   scripts/release.sh --verify   the same, then a second build from a clean `git clone` of
#                                 HEAD under /tmp; prints both binary checksums and fails if
#                                 they differ (the build is reproducible on one toolchain)
#
# <version> is Cargo.toml's. The build is made reproducible: paths are remapped
# (--remap-path-prefix for Rust, -ffile-prefix-map for the C in aws-lc and mimalloc),
# SOURCE_DATE_EPOCH is HEAD's commit time, CARGO_INCREMENTAL=0, the release profile strips
# symbols, and the tarball is written with sorted names, fixed mtime and owner, and gzip -n.
# The SBOM comes from cargo-cyclonedx (installed into .tools/ with `cargo install --locked`
# when missing). A release build takes minutes on two cores.
#
# Environment: CARGO (default cargo), RELEASE_VERIFY_DIR (default: a new dir under /tmp, removed
# afterwards).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=vault-plugin-secrets-litellm
CARGO=${CARGO:-cargo}
CYCLONEDX_VERSION=0.5.9

log() { printf '[release] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

VERIFY=0
case "${1:-}" in
  "") ;;
  --verify) VERIFY=1 ;;
  -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

# The version in Cargo.toml's [package] table.
crate_version() {  # dir
  awk -F'"' '/^\[/{p = ($0 == "[package]")} p && /^version *=/{print $2; exit}' "$1/Cargo.toml"
}

# cargo-cyclonedx: on PATH, in .tools/bin, or installed there.
cyclonedx() {
  local bin
  if bin=$(command -v cargo-cyclonedx 2>/dev/null); then
    printf '%s\n' "$bin"
    return
  fi
  bin="$ROOT/.tools/bin/cargo-cyclonedx"
  if [ ! -x "$bin" ]; then
    log "installing cargo-cyclonedx $CYCLONEDX_VERSION into .tools/"
    "$CARGO" install cargo-cyclonedx --version "$CYCLONEDX_VERSION" --locked \
      --root "$ROOT/.tools" >&2
  fi
  printf '%s\n' "$bin"
}

# A reproducible release build of the crate in $1; prints the binary's path.
build() {  # src
  local src=$1 epoch cargo_home
  epoch=$(git -C "$src" log -1 --format=%ct "$COMMIT")
  cargo_home=${CARGO_HOME:-$HOME/.cargo}
  log "cargo build --release --locked in $src (SOURCE_DATE_EPOCH=$epoch)"
  (
    cd "$src"
    export SOURCE_DATE_EPOCH=$epoch CARGO_INCREMENTAL=0
    export CARGO_TARGET_DIR="$src/target"
    export RUSTFLAGS="--remap-path-prefix=$src=/build --remap-path-prefix=$cargo_home=/cargo"
    export CFLAGS="-ffile-prefix-map=$src=/build -ffile-prefix-map=$cargo_home=/cargo"
    export CXXFLAGS="$CFLAGS"
    "$CARGO" build --release --locked >&2
  )
  printf '%s\n' "$src/target/release/$NAME"
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

cd "$ROOT"
COMMIT=$(git rev-parse HEAD)
VERSION=$(crate_version "$ROOT")
[ -n "$VERSION" ] || die "no version in Cargo.toml"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  log "warning: the work tree has uncommitted changes; the artifacts are not those of HEAD"
fi

BIN=$(build "$ROOT")
DIST="$ROOT/dist"
STAGE="$NAME"_"$VERSION"_linux_amd64
TARBALL="$STAGE.tar.gz"
SBOM="$NAME"_"$VERSION".cdx.json
rm -rf "$DIST"
mkdir -p "$DIST/$STAGE"
install -m 0755 "$BIN" "$DIST/$NAME"
install -m 0755 "$BIN" "$DIST/$STAGE/$NAME"
install -m 0644 README.md "$DIST/$STAGE/README.md"
if [ -f LICENSE ]; then install -m 0644 LICENSE "$DIST/$STAGE/LICENSE"; fi
MTIME="@$(git log -1 --format=%ct "$COMMIT")"
tar --sort=name --mtime="$MTIME" --owner=0 --group=0 --numeric-owner \
  --format=gnu -C "$DIST" -cf - "$STAGE" | gzip -n -9 > "$DIST/$TARBALL"
rm -rf "${DIST:?}/$STAGE"

# The SBOM: the dependency graph of the binary (normal dependencies, this target), as
# CycloneDX 1.5 JSON. cargo-cyclonedx writes <crate>.cdx.json beside Cargo.toml.
CDX=$(cyclonedx)
log "SBOM with $("$CDX" cyclonedx --version 2>/dev/null || echo cargo-cyclonedx)"
"$CDX" cyclonedx --format json --spec-version 1.5 --target x86_64-unknown-linux-gnu \
  --override-filename "$NAME.cdx" >&2
mv "$ROOT/$NAME.cdx.json" "$DIST/$SBOM"

(cd "$DIST" && sha256sum "$TARBALL" "$NAME" "$SBOM" > SHA256SUMS)
log "dist/:"
(cd "$DIST" && ls -l && cat SHA256SUMS) >&2
FIRST=$(sha256 "$DIST/$NAME")

if [ "$VERIFY" = 1 ]; then
  OWN_DIR=0
  if [ -z "${RELEASE_VERIFY_DIR:-}" ]; then
    RELEASE_VERIFY_DIR=$(mktemp -d /tmp/release-verify.XXXXXX)
    OWN_DIR=1
  fi
  cleanup() { if [ "$OWN_DIR" = 1 ]; then rm -rf "$RELEASE_VERIFY_DIR"; fi; }
  trap cleanup EXIT
  CLONE="$RELEASE_VERIFY_DIR/$NAME"
  rm -rf "$CLONE"
  # The commit the first build was made from, even if HEAD moved during that build.
  log "clean clone of HEAD (${COMMIT:0:7}) into $CLONE"
  git clone --quiet --no-hardlinks "$ROOT" "$CLONE"
  git -C "$CLONE" checkout --quiet --detach "$COMMIT"
  SECOND=$(sha256 "$(build "$CLONE")")
  printf 'work tree   %s  %s\n' "$FIRST" "$NAME"
  printf 'clean clone %s  %s\n' "$SECOND" "$NAME"
  if [ "$FIRST" != "$SECOND" ]; then
    die "the binaries differ: the build is not reproducible"
  fi
  log "reproducible: both builds give $FIRST"
fi
