"""Splits a dictd dictionary (the Jargon File) into its entries, 80/20 by entry.

Usage: split_jargon.py DICTD_DIR OUT_DIR. Entries in index order; every fifth (the 5th,
10th, ...) goes to test.txt, the others to train.txt, one entry after another with a blank
line between them. The dictionary's own header entries (00-database-*) are left out.
"""

import gzip
import pathlib
import sys

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def number(b64):
    n = 0
    for ch in b64:
        n = n * 64 + B64.index(ch)
    return n


def main():
    src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    data = gzip.decompress((src / "jargon.dict.dz").read_bytes())
    entries = []
    for line in (src / "jargon.index").read_text(encoding="utf-8").splitlines():
        word, offset, length = line.split("\t")
        if word.startswith("00-database"):
            continue
        start = number(offset)
        entries.append(data[start : start + number(length)].decode("utf-8").strip())
    train = [e for i, e in enumerate(entries) if i % 5 != 4]
    test = [e for i, e in enumerate(entries) if i % 5 == 4]
    (out / "train.txt").write_text("\n\n".join(train) + "\n", encoding="utf-8")
    (out / "test.txt").write_text("\n\n".join(test) + "\n", encoding="utf-8")
    print(f"{len(train)} entries to train.txt, {len(test)} to test.txt", file=sys.stderr)


main()
