#!/usr/bin/env bash
# Fetches llama.cpp's models/ directory (vocabulary-only GGUFs with their test vectors,
# ggml-vocab-*, and the chat templates, templates/) from the llama-cpp-python 0.3.36 source
# distribution on PyPI, verifies its sha256, keeps only those files in
# ${LANTERN_CACHE:-~/.cache/lantern}/llama-models-0.3.36 and prints that directory.
# Quick when already cached. The tests that use it read LANTERN_LLAMA_MODELS:
#   export LANTERN_LLAMA_MODELS=$(bash scripts/fetch-llama-models.sh)
# LANTERN_LLAMA_SDIST may name an already downloaded llama_cpp_python-0.3.36.tar.gz.
set -euo pipefail

version=0.3.36
sdist=llama_cpp_python-$version.tar.gz
sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e

. "$(dirname "$0")/cache-dir.sh"
dir=$cache/llama-models-$version
if [ -f "$dir/.complete" ]; then
    echo "$dir"
    exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.llama-models.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -n "${LANTERN_LLAMA_SDIST:-}" ]; then
    archive=$LANTERN_LLAMA_SDIST
else
    echo "downloading $sdist from PyPI (76 MB)" >&2
    python3 -m pip download --quiet --no-deps --no-binary :all: -d "$work" \
        "llama-cpp-python==$version" >&2
    archive=$work/$sdist
fi
echo "$sha256  $archive" | sha256sum --check --quiet - >&2 || {
    echo "sha256 of $archive is not $sha256" >&2
    exit 1
}

# Only the vocabularies and templates: the rest of the 76 MB stays in the archive.
prefix=llama_cpp_python-$version/vendor/llama.cpp/models
mkdir -p "$work/models"
tar -xzf "$archive" -C "$work/models" --strip-components=4 --wildcards \
    "$prefix/ggml-vocab-*" "$prefix/templates/*"
touch "$work/models/.complete"
rm -rf "$dir"
mv "$work/models" "$dir"
echo "$dir"
