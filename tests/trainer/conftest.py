"""Kernel tests run compiled on a CUDA GPU, and under Triton's CPU interpreter everywhere else.

Triton decides interpreter-or-compiler when a kernel is defined, so the switch is set here, before
any test module imports ``trainer.kernels``. The interpreter's bf16 ``tl.dot`` is wrong, so bf16
cases run on a GPU only.
"""

import importlib
import os
from pathlib import Path

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
# Largest error allowed, relative to the reference's largest magnitude, for results computed in each dtype.
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}
KERNEL_MODULES = [
    f"corpusmill.trainer.kernels.{name}"
    for name in ("fused_linear_cross_entropy", "layer_norm_1p", "partial_rope", "squared_relu")
]


def pytest_configure(config: pytest.Config) -> None:
    if not HAS_CUDA:
        os.environ["TRITON_INTERPRET"] = "1"


@pytest.fixture
def device() -> torch.device:
    return torch.device("cuda" if HAS_CUDA else "cpu")


@pytest.fixture(
    params=[
        torch.float32,
        torch.float16,
        pytest.param(
            torch.bfloat16, marks=pytest.mark.skipif(not HAS_CUDA, reason="interpreter bf16 is wrong; GPU only")
        ),
    ],
    ids=["fp32", "fp16", "bf16"],
)
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return request.param


@pytest.fixture
def assert_matches(dtype: torch.dtype):
    """Compare a kernel's result in ``dtype`` with a float32 reference, scaled to the reference's size."""

    def check(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
        tolerance = TOLERANCE[dtype]
        scale = expected.abs().max().item() or 1.0
        torch.testing.assert_close(
            actual.float(),
            expected.float(),
            rtol=tolerance,
            atol=tolerance * scale,
            msg=lambda message: f"{what} ({dtype}): {message}",
        )

    return check


@pytest.fixture
def pytorch_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send every op down its plain PyTorch path, as on a machine with neither GPU nor interpreter."""
    for module in KERNEL_MODULES:
        monkeypatch.setattr(importlib.import_module(module), "triton_can_run", lambda kernel, *tensors: False)


# A second blend for phase-switch tests: the same shards, code up-weighted (a continued-training phase).
CODE_HEAVY_SPEC = """\
name: codeheavy
seq_length: 128
phases:
  annealing:
    tokens: 1M
    groups:
      english: {weight: 30, within: tokens}
      code: {weight: 70, within: tokens}
"""
PIPELINE_VOCAB = 2000  # the demo corpus has ~1,400 distinct characters (CJK catalogs among them)


@pytest.fixture(scope="session")
def pipeline_shards(tmp_path_factory: pytest.TempPathFactory):
    """Shards made by corpusmill's own pipeline from real text on this machine: demo inputs (60 docs per kind)
    -> ingest -> classify -> tokenizer train -> tokenize -> blend resolve (Nemotron-4's, and a code-heavy one)."""
    from types import SimpleNamespace

    from corpusmill.curation.blend.stage import BlendResolveOptions, resolve_blend
    from corpusmill.curation.classify.stage import ClassifyOptions, classify_dataset
    from corpusmill.curation.executor import SerialExecutor
    from corpusmill.curation.ingest.stage import IngestOptions, ingest
    from corpusmill.curation.megatron.stage import TokenizeOptions, tokenize_dataset
    from corpusmill.pipelines.demo_corpus import assemble_demo_inputs
    from corpusmill.tokenizer.train_stage import TrainOptions, train_tokenizer

    root = tmp_path_factory.mktemp("pipeline")
    executor = SerialExecutor()
    inputs = assemble_demo_inputs(root / "raw", max_docs_per_kind=60)
    sources = tuple(f"{path}={source}" for path, source in inputs.ingest_inputs)
    ingest(IngestOptions(inputs=sources, out=str(root / "ingested")), executor=executor)
    classify_dataset(ClassifyOptions(input=str(root / "ingested"), out=str(root / "classified")), executor=executor)
    tokenizer_options = TrainOptions(
        input=str(root / "classified"), out=str(root / "tokenizer"), vocab_size=PIPELINE_VOCAB, num_threads=2
    )
    train_tokenizer(tokenizer_options, executor=executor)
    tokenize_options = TokenizeOptions(
        input=str(root / "classified"), tokenizer=str(root / "tokenizer"), out=str(root / "tokenized")
    )
    tokenize_dataset(tokenize_options, executor=executor)
    (root / "codeheavy.yaml").write_text(CODE_HEAVY_SPEC)
    blends = {}
    for name, spec in (("pretrain", Path(__file__).resolve().parents[2] / "blend_specs" / "nemotron4.yaml"), ("annealing", root / "codeheavy.yaml")):
        resolve_options = BlendResolveOptions(
            spec=str(spec), shards=(str(root / "tokenized"),), tokens=1e6, seq_length=128, out=str(root / name)
        )
        resolve_blend(resolve_options, executor=executor)
        blends[name] = root / name
    return SimpleNamespace(root=root, tokenizer=root / "tokenizer", tokenized=root / "tokenized", **blends)
