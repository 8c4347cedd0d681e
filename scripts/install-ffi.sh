#!/usr/bin/env bash
# Builds lantern's C library (crates/lantern-ffi) and installs it into PREFIX:
#   PREFIX/include/lantern.h
#   PREFIX/lib/liblantern_ffi.a, PREFIX/lib/liblantern_ffi.so
#   PREFIX/lib/pkgconfig/lantern.pc
#   PREFIX/lib/cmake/lantern/lanternConfig.cmake, lanternConfigVersion.cmake
# so that `find_package(lantern)` (with CMAKE_PREFIX_PATH=PREFIX) and
# `PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs lantern` both work.
# The build goes to $CARGO_TARGET_DIR (default target/); --no-build installs what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
if [ "${1:-}" = "--no-build" ]; then
    build=0
    shift
fi
if [ $# -ne 1 ]; then
    echo "usage: scripts/install-ffi.sh [--no-build] PREFIX" >&2
    exit 2
fi
mkdir -p "$1"
prefix=$(cd "$1" && pwd)
target="${CARGO_TARGET_DIR:-target}/release"

if [ $build = 1 ]; then
    cargo build --release -p lantern-ffi
fi
for f in include/lantern.h "$target/liblantern_ffi.a" "$target/liblantern_ffi.so"; do
    [ -f "$f" ] || { echo "install-ffi: $f is missing" >&2; exit 1; }
done

# The workspace's version (the crate inherits it).
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "install-ffi: no version in Cargo.toml" >&2; exit 1; }

install -d "$prefix/include" "$prefix/lib/pkgconfig" "$prefix/lib/cmake/lantern"
install -m 644 include/lantern.h "$prefix/include/"
install -m 644 "$target/liblantern_ffi.a" "$prefix/lib/"
install -m 755 "$target/liblantern_ffi.so" "$prefix/lib/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@LANTERN_VERSION@|$version|" \
    cmake/lantern.pc.in >"$prefix/lib/pkgconfig/lantern.pc"
install -m 644 cmake/lanternConfig.cmake "$prefix/lib/cmake/lantern/"
sed -e "s|@LANTERN_VERSION@|$version|" -e "s|@LANTERN_VERSION_MAJOR@|${version%%.*}|" \
    cmake/lanternConfigVersion.cmake.in >"$prefix/lib/cmake/lantern/lanternConfigVersion.cmake"
echo "installed lantern $version into $prefix"
