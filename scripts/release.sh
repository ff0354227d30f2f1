#!/usr/bin/env bash
# release.sh - build the release artifacts of HEAD's commit into dist/ (linux amd64):
#
#   dist/vault-plugin-secrets-litellm_<version>_linux_amd64.tar.gz   the binary, README.md,
#                                                                    LICENSE (if present)
#   dist/vault-plugin-secrets-litellm                                the binary alone
#   dist/vault-plugin-secrets-litellm_<version>.cdx.json              CycloneDX SBOM of the
#                                                                    Rust dependencies
#   dist/SHA256SUMS                                                  the three above
#
#   scripts/release.sh            build HEAD's commit (cargo build --release --locked)
#   scripts/release.sh --verify   the same, then build the commit a second time from scratch
#                                 and compare; prints the checksums of both builds and fails
#                                 if any of the three artifacts differs
#
# What is built is the commit, never the work tree: `git archive` of the commit, extracted into
# one fixed directory, $RELEASE_BUILD_DIR/src, emptied first, with its own target dir inside.
# So uncommitted or untracked files, a previous build's target dir and the work tree's
# location do not reach the artifacts. <version> is the commit's Cargo.toml's. Paths are
# remapped besides (--remap-path-prefix for Rust, -ffile-prefix-map for the C in aws-lc and
# mimalloc: src/ -> /build, $CARGO_HOME -> /cargo). SOURCE_DATE_EPOCH is the commit's time:
# gcc takes mimalloc's __DATE__/__TIME__ ("built on ...") from it, which without it, or with
# another commit's, make the binary differ; cargo-cyclonedx then writes no random
# serialNumber and that time as the timestamp. CARGO_INCREMENTAL=0, the release profile
# strips symbols, and the tarball is written with sorted names, fixed mtime, owner and modes,
# and gzip -n. Builds are equal for one toolchain (rustc, gcc, binutils). The SBOM comes from
# cargo-cyclonedx (installed into .tools/ with `cargo install --locked` when missing). A
# release build takes 8-20 minutes on two cores, depending on the load.
#
# Environment: CARGO (default cargo), RELEASE_BUILD_DIR (default
# /tmp/vault-plugin-secrets-litellm-build; left in place for inspection, the second build's
# artifacts in verify/; emptied by the next run; one run at a time).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=vault-plugin-secrets-litellm
CARGO=${CARGO:-cargo}
CYCLONEDX_VERSION=0.5.9
BUILD_DIR=${RELEASE_BUILD_DIR:-/tmp/$NAME-build}

log() { printf '[release] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

VERIFY=0
case "${1:-}" in
  "") ;;
  --verify) VERIFY=1 ;;
  -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

# The version in a Cargo.toml's [package] table, read from stdin.
crate_version() {
  awk -F'"' '/^\[/{p = ($0 == "[package]")} p && /^version *=/{print $2; exit}'
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

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# One build of $COMMIT from scratch in $SRC; its three artifacts and SHA256SUMS go into $1.
build() {  # out
  local out=$1 cargo_home stage
  cargo_home=${CARGO_HOME:-$HOME/.cargo}
  rm -rf "${SRC:?}" "${out:?}"
  mkdir -p "$SRC" "$out"
  git -C "$ROOT" archive --format=tar "$COMMIT" | tar -xf - -C "$SRC"
  log "cargo build --release --locked of ${COMMIT:0:7} in $SRC (SOURCE_DATE_EPOCH=$EPOCH)"
  (
    cd "$SRC"
    unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_BUILD_TARGET
    export SOURCE_DATE_EPOCH=$EPOCH CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$SRC/target"
    export RUSTFLAGS="--remap-path-prefix=$SRC=/build --remap-path-prefix=$cargo_home=/cargo"
    export CFLAGS="-ffile-prefix-map=$SRC=/build -ffile-prefix-map=$cargo_home=/cargo"
    export CXXFLAGS="$CFLAGS"
    log "$("${RUSTC:-rustc}" -V), $("$CARGO" -V), $(cc --version | head -n1)"
    "$CARGO" build --release --locked >&2
  )
  install -m 0755 "$SRC/target/release/$NAME" "$out/$NAME"

  stage="$NAME"_"$VERSION"_linux_amd64
  mkdir "$out/$stage"
  install -m 0755 "$out/$NAME" "$out/$stage/$NAME"
  install -m 0644 "$SRC/README.md" "$out/$stage/README.md"
  if [ -f "$SRC/LICENSE" ]; then install -m 0644 "$SRC/LICENSE" "$out/$stage/LICENSE"; fi
  tar --sort=name --mtime="@$EPOCH" --owner=0 --group=0 --numeric-owner --mode=u=rwX,go=rX \
    --format=gnu -C "$out" -cf - "$stage" | gzip -n -9 > "$out/$TARBALL"
  rm -rf "${out:?}/$stage"

  # The SBOM: the dependency graph of the binary (normal dependencies, this target), as
  # CycloneDX 1.5 JSON. cargo-cyclonedx writes <name>.cdx.json beside Cargo.toml.
  (
    cd "$SRC"
    SOURCE_DATE_EPOCH=$EPOCH "$CDX" cyclonedx --format json --spec-version 1.5 \
      --target x86_64-unknown-linux-gnu --override-filename "$NAME.cdx" >&2
  )
  mv "$SRC/$NAME.cdx.json" "$out/$SBOM"

  (cd "$out" && sha256sum "$TARBALL" "$NAME" "$SBOM" > SHA256SUMS)
}

cd "$ROOT"
COMMIT=$(git rev-parse HEAD)
EPOCH=$(git log -1 --format=%ct "$COMMIT")
VERSION=$(git show "$COMMIT:Cargo.toml" | crate_version)
[ -n "$VERSION" ] || die "no version in Cargo.toml"
STAGE_NAME="$NAME"_"$VERSION"
TARBALL="$STAGE_NAME"_linux_amd64.tar.gz
SBOM="$STAGE_NAME".cdx.json
if [ -n "$(git status --porcelain)" ]; then
  log "note: the work tree has changes that are not committed; they are not in the build"
fi

mkdir -p "$BUILD_DIR"
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
SRC=$BUILD_DIR/src
exec 9> "$BUILD_DIR/lock"
flock -n 9 || die "another release.sh is building in $BUILD_DIR"
CDX=$(cyclonedx)
log "SBOM with $("$CDX" cyclonedx --version)"

DIST="$ROOT/dist"
build "$DIST"
log "dist/:"
(cd "$DIST" && ls -l && cat SHA256SUMS) >&2

if [ "$VERIFY" = 1 ]; then
  build "$BUILD_DIR/verify"
  printf 'first build\n'
  cat "$DIST/SHA256SUMS"
  printf 'second build\n'
  cat "$BUILD_DIR/verify/SHA256SUMS"
  if ! cmp -s "$DIST/SHA256SUMS" "$BUILD_DIR/verify/SHA256SUMS"; then
    die "the builds differ (compare dist/ with $BUILD_DIR/verify/): not reproducible"
  fi
  log "reproducible: both builds give binary $(sha256 "$DIST/$NAME")"
fi
