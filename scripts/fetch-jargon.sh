#!/usr/bin/env bash
# Fetches the domain text of docs/ADAPTATION.md: the Jargon File 4.4.7 (public domain), from
# Debian's dict-jargon 4.4.7-3.1 package, verifies the package's sha256, and splits its
# 2,300 entries by entry, 80/20 (every fifth entry held out), into
# ${LANTERN_CACHE:-~/.cache/lantern}/jargon/{train,test}.txt; prints that directory.
# Quick when already cached. The tests do not need it.
set -euo pipefail

deb=dict-jargon_4.4.7-3.1_all.deb
sha256=405f8168d7994ed2cb71407bb95493daec2e9aa66fc0461dafa74a9d6728a8c1

. "$(dirname "$0")/cache-dir.sh"
dir=$cache/jargon
if [ -f "$dir/train.txt" ] && [ -f "$dir/test.txt" ]; then
    echo "$dir"
    exit 0
fi

mkdir -p "$dir"
work=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "dict-jargon=4.4.7-3.1" >&2)
echo "$sha256  $work/$deb" | sha256sum --check --quiet - >&2 || {
    echo "sha256 of $deb is not $sha256" >&2
    exit 1
}
dpkg-deb -x "$work/$deb" "$work/unpacked"
python3 "$(dirname "$0")/split_jargon.py" "$work/unpacked/usr/share/dictd" "$work"
mv "$work/train.txt" "$work/test.txt" "$dir/"
echo "$dir"
