"""Training samples from corpusmill's tokenized shards: memory-mapped, shuffled per epoch, blended by Megatron's rule.

A phase of training reads one ``trainer.json`` (written by ``corpusmill blend resolve``): prefixes and
their weights. Every sample is a pure function of the seed and its position, so a resumed run draws
exactly the samples an uninterrupted one would, and no data-loader state needs saving beyond a count.

* :class:`PrefixSamples` reads one prefix through ``IndexedReader``'s memory map; only the tokens of
  the samples asked for are copied. Its documents, in a fresh order every epoch, form one endless
  token stream, and sample ``k`` is ``stream[k*L : k*L + L + 1]`` for sequence length ``L``: samples
  run across document boundaries with every document's EOD kept, and the last token of one sample is
  the first of the next (inputs are ``[:-1]``, targets ``[1:]``). The order of samples is shuffled
  too, within each epoch-sized block, so neighbouring samples do not come from neighbouring documents.
  A prefix smaller than one sample simply wraps into its next epoch.
* :class:`BlendIndex` says which prefix global sample ``i`` comes from, by Megatron's deterministic
  rule (``megatron/core/datasets/helpers.cpp``, ``build_blending_indices``): the prefix with the
  largest ``w_d * max(i, 1) - drawn_d``, ties to the lowest index. The rule is sequential, so it runs
  as a compiled loop, once per phase, and is cached on disk.
* :class:`PhaseSamples` puts them together: sample ``i`` of a phase is sample ``n`` of prefix
  ``choices[i]``, where ``n`` counts the earlier draws of that prefix.

Shards are refused unless the ``tokenized.json`` of the `corpusmill tokenize` output holding them
records the run's tokenizer: ids from another vocabulary would train on garbage without any error.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections import OrderedDict
from pathlib import Path

import numpy as np

from corpusmill.curation.atomic import TMP_MARKER
from corpusmill.curation.blend.resolve import TRAIN
from corpusmill.curation.blend.trainer_blend import TRAINER_FILE, TrainerBlend, read_trainer_blend
from corpusmill.curation.errors import CorpusmillError, MissingFileError
from corpusmill.curation.megatron.indexed import IndexedReader
from corpusmill.curation.megatron.manifest import TOKENIZED_FILE, read_tokenized_manifest

# Draw counts are kept at every CHUNK-th sample, so any range of the index is located without a scan.
CHUNK = 1 << 16
_CACHED_EPOCHS = 2
_DOCUMENT_ORDER, _SAMPLE_ORDER = 0, 1


class DataError(CorpusmillError, ValueError):
    """Shards or a blend the trainer cannot read as asked; the message names the file and the fix."""


class TokenizerMismatch(DataError):
    """A shard was tokenized with another tokenizer than the run trains with."""


# --- which shards a phase reads -----------------------------------------------------------------


def prefix_tokenizer_sha256(prefix: Path) -> str:
    """The sha256 of the tokenizer ``prefix`` was made with, from the ``tokenized.json`` above it."""
    for directory in prefix.parents:
        if (directory / TOKENIZED_FILE).is_file():
            for info in read_tokenized_manifest(directory).prefixes:
                if (directory / info.prefix).resolve() == prefix.resolve():
                    return info.tokenizer_sha256
            raise DataError(f"{prefix}: not listed in {directory / TOKENIZED_FILE}; re-run `corpusmill tokenize`")
    raise DataError(
        f"{prefix}: no {TOKENIZED_FILE} in a directory above it; the trainer reads `corpusmill tokenize` "
        "outputs, whose manifest records the tokenizer"
    )


def trainer_json_path(blend: str | Path) -> Path:
    """A blend's ``trainer.json``: given as the file or as the `blend resolve` output directory."""
    path = Path(blend)
    path = path / TRAINER_FILE if path.is_dir() else path
    if not path.is_file():
        raise MissingFileError(f"{blend}: no {TRAINER_FILE}; pass a `corpusmill blend resolve` output directory")
    return path.resolve()


def open_blend(blend: str | Path, tokenizer_sha256: str) -> TrainerBlend:
    """A phase's blend, with every training prefix checked to be intact and made with the run's tokenizer."""
    path = trainer_json_path(blend)
    resolved = read_trainer_blend(path)
    if not resolved.splits[TRAIN]:
        raise DataError(f"{path}: no training prefixes; re-run `corpusmill blend resolve`")
    for prefix, _ in resolved.splits[TRAIN]:
        found = prefix_tokenizer_sha256(prefix)
        if found != tokenizer_sha256:
            raise TokenizerMismatch(
                f"{prefix}: tokenized with tokenizer sha256 {found[:12]}..., but this run trains with "
                f"{tokenizer_sha256[:12]}...; re-tokenize it with the run's tokenizer or leave it out of the blend"
            )
        IndexedReader(prefix)  # a damaged or missing index is refused here, not mid-run
    return resolved


# --- one prefix -----------------------------------------------------------------------------------


class PrefixSamples:
    """The samples of one prefix, in their shuffled order, read from its memory-mapped ``.bin``."""

    def __init__(self, prefix: Path, seq_length: int, seed: tuple[int, ...]):
        reader = IndexedReader(prefix)
        self.prefix = prefix
        self.seq_length = seq_length
        self._tokens = reader.tokens
        self._lengths = reader.sequence_lengths.astype(np.int64)
        self._starts = reader.sequence_starts
        self.tokens_per_epoch = int(self._lengths.sum())
        if self.tokens_per_epoch == 0:
            raise DataError(f"{prefix}: holds no tokens; leave it out of the blend")
        self.samples_per_block = max(1, self.tokens_per_epoch // seq_length)
        self._seed = seed
        self._epochs: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._blocks: OrderedDict[int, np.ndarray] = OrderedDict()

    def _rng(self, kind: int, number: int) -> np.random.Generator:
        return np.random.default_rng([*self._seed, kind, number])

    def document_order(self, epoch: int) -> np.ndarray:
        """The documents of ``epoch`` in the order the stream reads them."""
        return self._epoch(epoch)[0]

    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The epoch's document order and where each of its documents ends in the epoch's stream."""
        if epoch not in self._epochs:
            order = self._rng(_DOCUMENT_ORDER, epoch).permutation(len(self._lengths))
            self._epochs[epoch] = (order, np.cumsum(self._lengths[order]))
            if len(self._epochs) > _CACHED_EPOCHS:
                self._epochs.popitem(last=False)
        return self._epochs[epoch]

    def _block_order(self, block: int) -> np.ndarray:
        if block not in self._blocks:
            self._blocks[block] = self._rng(_SAMPLE_ORDER, block).permutation(self.samples_per_block)
            if len(self._blocks) > _CACHED_EPOCHS:
                self._blocks.popitem(last=False)
        return self._blocks[block]

    def sample(self, number: int) -> np.ndarray:
        """Sample ``number`` of this prefix: ``seq_length + 1`` token ids (int64)."""
        block, within = divmod(number, self.samples_per_block)
        window = block * self.samples_per_block + int(self._block_order(block)[within])
        return self.stream(window * self.seq_length, self.seq_length + 1)

    def stream(self, position: int, count: int) -> np.ndarray:
        """``count`` tokens of the endless stream from ``position`` on, crossing documents and epochs."""
        out = np.empty(count, dtype=np.int64)
        filled = 0
        while filled < count:
            epoch, offset = divmod(position + filled, self.tokens_per_epoch)
            order, ends = self._epoch(epoch)
            slot = int(np.searchsorted(ends, offset, side="right"))
            document = order[slot]
            skip = offset - (int(ends[slot]) - int(self._lengths[document]))
            take = min(int(self._lengths[document]) - skip, count - filled)
            start = int(self._starts[document]) + skip
            out[filled : filled + take] = self._tokens[start : start + take]
            filled += take
        return out


# --- the blend ----------------------------------------------------------------------------------


class BlendIndex:
    """Which prefix each of a phase's samples comes from, and how many of that prefix's came before."""

    def __init__(self, choices: np.ndarray, counts_at_chunk: np.ndarray):
        self.choices = choices  # (samples,) prefix of each sample
        self.counts_at_chunk = counts_at_chunk  # (chunks, prefixes) draws before sample c * CHUNK

    @classmethod
    def build(cls, weights: np.ndarray, samples: int) -> BlendIndex:
        from corpusmill.trainer.blend_choices import megatron_choices  # numba: loaded only to build an index

        weights = np.asarray(weights, dtype=np.float64)
        choices = np.empty(samples, dtype=np.uint8 if len(weights) <= 256 else np.uint16)
        counts_at_chunk = np.empty((-(-samples // CHUNK), len(weights)), dtype=np.int64)
        megatron_choices(weights, choices, counts_at_chunk, CHUNK)
        return cls(choices, counts_at_chunk)

    @classmethod
    def cached(cls, weights: np.ndarray, samples: int, cache_dir: Path) -> BlendIndex:
        """The index from ``cache_dir`` (memory-mapped), built and published there atomically if missing."""
        weights = np.asarray(weights, dtype=np.float64)
        key = json.dumps({"rule": "megatron-v1", "chunk": CHUNK, "samples": samples, "weights": weights.tolist()})
        directory = cache_dir / f"blend-{hashlib.sha256(key.encode()).hexdigest()[:20]}"
        if not directory.is_dir():
            index = cls.build(weights, samples)
            partial = cache_dir / f".{directory.name}{TMP_MARKER}{uuid.uuid4().hex[:12]}"
            partial.mkdir(parents=True)
            np.save(partial / "choices.npy", index.choices)
            np.save(partial / "counts_at_chunk.npy", index.counts_at_chunk)
            try:
                os.rename(partial, directory)
            except OSError:  # another process published the same index first
                shutil.rmtree(partial)
        return cls(
            np.load(directory / "choices.npy", mmap_mode="r"), np.load(directory / "counts_at_chunk.npy", mmap_mode="r")
        )

    def __len__(self) -> int:
        return len(self.choices)

    def locate(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """For samples ``start .. stop - 1``: each one's prefix and its sample number within that prefix."""
        if not 0 <= start <= stop <= len(self.choices):
            raise IndexError(f"samples {start}..{stop} outside the phase's {len(self.choices)}")
        if start == stop:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        chunk_start = start // CHUNK * CHUNK
        drawn = self.counts_at_chunk[start // CHUNK].copy()
        drawn += np.bincount(self.choices[chunk_start:start], minlength=len(drawn))
        prefixes = np.asarray(self.choices[start:stop], dtype=np.int64)
        numbers = np.empty(len(prefixes), dtype=np.int64)
        for prefix in np.unique(prefixes):
            where = np.flatnonzero(prefixes == prefix)
            numbers[where] = drawn[prefix] + np.arange(len(where))
        return prefixes, numbers


class PhaseSamples:
    """A phase's training samples in order: ``samples(a, b)`` is the ``(b - a, seq_length + 1)`` batch."""

    def __init__(self, blend: TrainerBlend, seq_length: int, seed: int, phase: int, index: BlendIndex):
        train = blend.splits[TRAIN]
        self.prefixes = [
            PrefixSamples(path, seq_length, (seed, phase, number)) for number, (path, _) in enumerate(train)
        ]
        self.weights = np.array([weight for _, weight in train], dtype=np.float64)
        self.index = index

    @classmethod
    def open(
        cls, blend: TrainerBlend, seq_length: int, seed: int, phase: int, samples: int, cache_dir: Path
    ) -> PhaseSamples:
        weights = np.array([weight for _, weight in blend.splits[TRAIN]], dtype=np.float64)
        return cls(blend, seq_length, seed, phase, BlendIndex.cached(weights, samples, cache_dir))

    def __len__(self) -> int:
        return len(self.index)

    def samples(self, start: int, stop: int) -> np.ndarray:
        prefixes, numbers = self.index.locate(start, stop)
        return np.stack([self.prefixes[prefix].sample(int(number)) for prefix, number in zip(prefixes, numbers)])
