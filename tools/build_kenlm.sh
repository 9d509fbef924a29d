#!/usr/bin/env bash
# Build KenLM's lmplz and build_binary from the upstream sources and install them into a bin directory.
#
#   tools/build_kenlm.sh BIN_DIR PYTHON
#
# Why a build: PyPI's kenlm wheels carry only the query module; `corpusmill lm train` needs
# the estimation tools. The sources come from PyPI (the kenlm sdist holds the whole C++ tree,
# lm/builder included), the libraries from Debian. The binaries are cached in
# $KENLM_CACHE (default ~/.cache/corpusmill/kenlm-VERSION), so a second set-up, or a fresh
# clone on the same machine, copies them instead of rebuilding.
set -euo pipefail

BIN_DIR=${1:?usage: build_kenlm.sh BIN_DIR PYTHON}
PYTHON=${2:?usage: build_kenlm.sh BIN_DIR PYTHON}
VERSION=0.3.0
CACHE=${KENLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/corpusmill/kenlm-$VERSION}
TOOLS="lmplz build_binary"
DEBIAN_PACKAGES="cmake make g++ libboost-program-options-dev libboost-system-dev libboost-thread-dev
  libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev"

cached() {
  for tool in $TOOLS; do [ -x "$CACHE/bin/$tool" ] || return 1; done
  "$CACHE/bin/build_binary" --help >/dev/null 2>&1 || [ $? -eq 1 ]  # links: its usage exits 1
}

install_debian_packages() {
  missing=""
  for package in $DEBIAN_PACKAGES; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing="$missing $package"
  done
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "build_kenlm: missing Debian packages:$missing; install them (sudo apt-get install$missing) and re-run" >&2
    exit 1
  fi
  echo "build_kenlm: installing$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

build() {
  install_debian_packages
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "build_kenlm: building lmplz and build_binary from kenlm $VERSION (about a minute)"
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: "kenlm==$VERSION" -d "$work"
  tar -xzf "$work/kenlm-$VERSION.tar.gz" -C "$work"
  cmake -S "$work/kenlm-$VERSION" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DKENLM_MAX_ORDER=6 >"$work/cmake.log" 2>&1 \
    || { cat "$work/cmake.log" >&2; exit 1; }
  make -C "$work/build" -j"$(nproc)" $TOOLS >"$work/make.log" 2>&1 || { tail -50 "$work/make.log" >&2; exit 1; }
  mkdir -p "$CACHE/bin.tmp"
  for tool in $TOOLS; do cp "$work/build/bin/$tool" "$CACHE/bin.tmp/"; done
  rm -rf "$CACHE/bin" && mv "$CACHE/bin.tmp" "$CACHE/bin"  # complete or absent, never half there
}

cached || build
mkdir -p "$BIN_DIR"
for tool in $TOOLS; do cp "$CACHE/bin/$tool" "$BIN_DIR/$tool"; done
echo "build_kenlm: $TOOLS in $BIN_DIR (cached in $CACHE)"
