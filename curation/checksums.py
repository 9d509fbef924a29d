"""Content checksums: how corpusmill notices that a shard or an input file changed.

One algorithm (xxh3-128, about 10 GB/s, so verifying a shard before reading it costs far
less than decoding it) and one spelling (``xxh3_128:<hex>``), used for dataset shards
(recorded in the manifest, verified on read) and for ingest's raw inputs (recorded per
file, re-checked when a re-run finds the file's size or mtime changed).
"""

from __future__ import annotations

from pathlib import Path

import xxhash

ALGORITHM = "xxh3_128"
BLOCK_BYTES = 4 * 2**20


class Checksum:
    """A running checksum, for bytes that are being read anyway (ingest's raw inputs)."""

    def __init__(self) -> None:
        self._digest = xxhash.xxh3_128()

    def update(self, data: bytes) -> None:
        self._digest.update(data)

    def value(self) -> str:
        return f"{ALGORITHM}:{self._digest.hexdigest()}"


def file_checksum(path: Path) -> str:
    """The checksum of a whole file, read in blocks."""
    checksum = Checksum()
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            checksum.update(block)
    return checksum.value()
