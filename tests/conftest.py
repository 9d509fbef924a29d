"""Shared fixtures: one embedded Ray for the whole test session, one demo run, and small corpora."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# Triton picks interpreter or compiler when a kernel is defined, and libraries imported by earlier
# test folders (megatron-core) define kernels too: the switch must be set before anything imports triton.
if "TRITON_INTERPRET" not in os.environ and not _has_cuda():
    os.environ["TRITON_INTERPRET"] = "1"


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    import ray

    from corpusmill.pipelines.execution import ensure_ray

    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()


@dataclass(frozen=True)
class DemoRun:
    out: Path
    returncode: int
    printed: str


@pytest.fixture(scope="session")
def demo_run(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`corpusmill demo` once per session: its outputs serve the demo's own test and the report's."""
    from corpusmill.pipelines.cli import main

    out = tmp_path_factory.mktemp("demo") / "demo"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        returncode = main(["demo", "--out", str(out)])
    return DemoRun(out, returncode, printed.getvalue())


def python_stdlib_texts(limit: int) -> list[str]:
    """Real documents for tests: docstring-rich modules of the running Python's stdlib."""
    import sysconfig

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = []
    for path in sorted(stdlib.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="strict")
        if len(text) > 2000:
            texts.append(text)
        if len(texts) == limit:
            break
    return texts


@pytest.fixture(scope="session")
def stdlib_texts() -> list[str]:
    """Sixty distinct real documents (stdlib modules), for tests that build their own inputs."""
    return python_stdlib_texts(60)


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """Raw inputs in every format, with exact duplicates across files and every bad-input case."""
    raw = tmp_path / "raw"
    (raw / "tree" / "pkg").mkdir(parents=True)
    texts = python_stdlib_texts(40)
    with gzip.open(raw / "web.jsonl.gz", "wt") as handle:
        for i, text in enumerate(texts[:30]):
            handle.write(json.dumps({"text": text, "url": f"https://example.org/{i}", "rank": i}) + "\n")
        handle.write(json.dumps({"text": texts[0], "url": "dup"}) + "\n")
    lines = [json.dumps({"text": t, "id": f"book-{i}"}).encode() for i, t in enumerate(texts[25:40])]
    lines += [
        b'{"text": "unterminated',
        b'{"text": 42}',
        b'{"title": "no text here"}',
        b'{"text": "   \\n  "}',
        b'["not", "an", "object"]',
        b'{"text": "caf\xe9 latin-1 byte"}',
        b'{"text": "nul \\u0000 inside"}',
    ]
    (raw / "books.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    for i, text in enumerate(texts[:5]):
        (raw / "tree" / "pkg" / f"mod{i}.py").write_text(text)
    (raw / "tree" / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (raw / "tree" / "latin1.txt").write_bytes("r\xe9sum\xe9 in latin-1".encode("latin-1"))
    (raw / "tree" / "empty.txt").write_text("")
    return raw
