"""The Nemotron-4 model: parity with transformers, the paper's sizes, FLOPs, and a few real training steps."""

import itertools
import json
import math
import sysconfig
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest
import sentencepiece as spm
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from transformers import NemotronConfig as HFNemotronConfig
from transformers import NemotronForCausalLM

from corpusmill.curation.dataset import Manifest, ShardWriter, describe_columns, write_manifest
from corpusmill.curation.executor import SerialExecutor
from corpusmill.tokenizer.card import CARD_FILE
from corpusmill.tokenizer.codec import MODEL_FILE
from corpusmill.tokenizer.train_stage import TrainOptions, train_tokenizer
from corpusmill.trainer.kernels.fused_linear_cross_entropy import IGNORE_INDEX
from corpusmill.trainer.model import Nemotron
from corpusmill.trainer.presets import (
    PRESETS,
    NemotronConfig,
    config_from_preset,
    training_flops_per_token,
    vocab_size_from_card,
)

# Non-power-of-two widths everywhere: head_dim 12 rotates 6 features, GQA 4:2, odd vocabulary.
PARITY_CONFIG = NemotronConfig(
    num_layers=2, hidden_size=48, ffn_hidden_size=80, num_heads=4, num_kv_heads=2, seq_length=32, vocab_size=301
)


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def _transformers_twin(config: NemotronConfig) -> tuple[NemotronForCausalLM, Nemotron]:
    """transformers' reference and our model holding the same random weights, norm weights included."""
    reference = NemotronForCausalLM(
        HFNemotronConfig(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            intermediate_size=config.ffn_hidden_size,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            num_key_value_heads=config.num_kv_heads,
            max_position_embeddings=config.seq_length,
            norm_eps=config.norm_eps,
            attn_implementation="eager",
            rope_parameters={
                "rope_type": "default",
                "rope_theta": config.rope_theta,
                "partial_rotary_factor": config.rotary_fraction,
            },
        )
    ).float()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in reference.parameters():
            param.copy_(0.1 * torch.randn(param.shape, generator=generator))
    ours = Nemotron(config)
    ours.load_state_dict({name.removeprefix("model."): value for name, value in reference.state_dict().items()})
    return reference, ours


@pytest.mark.parametrize("path", ["triton", "pytorch"])
def test_matches_transformers_nemotron_in_float32(path, request):
    if path == "pytorch":
        request.getfixturevalue("pytorch_fallback")
    reference, ours = _transformers_twin(PARITY_CONFIG)
    input_ids = torch.randint(0, PARITY_CONFIG.vocab_size, (2, 13), generator=torch.Generator().manual_seed(1))
    targets = torch.cat((input_ids[:, 1:], torch.full((2, 1), IGNORE_INDEX)), dim=1)

    with torch.no_grad():
        assert _relative_error(ours(input_ids), reference(input_ids).logits) <= 1e-5

    loss = ours(input_ids, targets)
    reference_loss = reference(input_ids, labels=input_ids).loss  # transformers shifts labels itself
    assert abs(loss.item() - reference_loss.item()) <= 1e-5 * abs(reference_loss.item())

    loss.backward()
    reference_loss.backward()
    reference_params = dict(reference.named_parameters())
    for name, param in ours.named_parameters():
        reference_param = reference_params.get(f"model.{name}", reference_params.get(name))
        assert _relative_error(param.grad, reference_param.grad) <= 1e-4, name


@pytest.mark.parametrize(
    ("preset", "embedding_billions", "non_embedding_billions"),
    [("15b", 3.15, 12.49), ("340b", 9.44, 331.6)],  # Nemotron-4 papers: 3.2B + 12.5B, 9.4B + 331.6B
)
def test_presets_have_the_papers_parameter_counts(preset, embedding_billions, non_embedding_billions):
    with torch.device("meta"):
        model = Nemotron(PRESETS[preset])
    embedding = model.embed_tokens.weight.numel() + model.lm_head.weight.numel()
    non_embedding = sum(param.numel() for param in model.parameters()) - embedding
    assert embedding / 1e9 == pytest.approx(embedding_billions, abs=0.01)
    assert non_embedding / 1e9 == pytest.approx(non_embedding_billions, abs=0.01)


def test_flops_per_token_equal_what_torch_counts_for_a_training_step(pytorch_fallback):
    config = replace(PARITY_CONFIG, seq_length=16)
    model = Nemotron(config)
    input_ids = torch.randint(0, config.vocab_size, (2, config.seq_length))
    # The math attention backend is made of matmuls that FlopCounterMode sees (it counts causal
    # attention in full, as the PaLM MFU convention does).
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(input_ids).sum().backward()
    assert counter.get_total_flops() / input_ids.numel() == training_flops_per_token(config)


def test_init_scales_residual_projections_and_starts_norms_at_one():
    config = replace(PRESETS["tiny"], hidden_size=256, num_heads=4, num_kv_heads=4, ffn_hidden_size=512)
    model = Nemotron(config)
    block = model.layers[0]
    residual_std = config.init_std / math.sqrt(2 * config.num_layers)
    assert block.self_attn.o_proj.weight.std().item() == pytest.approx(residual_std, rel=0.05)
    assert block.mlp.down_proj.weight.std().item() == pytest.approx(residual_std, rel=0.05)
    assert block.mlp.up_proj.weight.std().item() == pytest.approx(config.init_std, rel=0.05)
    x = torch.randn(3, config.hidden_size)
    torch.testing.assert_close(block.input_layernorm(x), torch.nn.functional.layer_norm(x, (config.hidden_size,)))


TRAINED_VOCAB = 420


@pytest.fixture(scope="module")
def trained_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tokenizer, trained by `corpusmill tokenizer train`'s code path on stdlib sources."""
    root = tmp_path_factory.mktemp("tokenizer")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [path.read_text() for path in sorted(stdlib.glob("[a-d]*.py"))[:20]]
    writer = ShardWriter(root / "docs", "shards", "docs")
    ids = [f"doc{i}" for i in range(len(texts))]
    writer.write(pa.table({"id": ids, "text": texts, "source": ["stdlib"] * len(texts)}))
    write_manifest(root / "docs", Manifest("test_documents", {}, writer.close(), describe_columns(writer.schemas)))
    options = TrainOptions(input=str(root / "docs"), out=str(root / "model"), vocab_size=TRAINED_VOCAB, num_threads=2)
    train_tokenizer(options, executor=SerialExecutor())
    return root / "model"


def test_config_comes_from_the_card_tokenizer_train_wrote(trained_tokenizer):
    pieces = spm.SentencePieceProcessor(model_file=str(trained_tokenizer / MODEL_FILE)).get_piece_size()
    assert pieces == TRAINED_VOCAB
    for card in (trained_tokenizer / CARD_FILE, trained_tokenizer):
        assert vocab_size_from_card(card) == TRAINED_VOCAB
        config = config_from_preset("tiny", card)
        assert config.vocab_size == TRAINED_VOCAB and config.hidden_size == PRESETS["tiny"].hidden_size
    model = Nemotron(config)
    assert model.embed_tokens.num_embeddings == model.lm_head.weight.shape[0] == pieces


def test_vocab_size_comes_from_the_tokenizer_card(trained_tokenizer, tmp_path):
    card = tmp_path / "tokenizer_card.json"
    written = json.loads((trained_tokenizer / CARD_FILE).read_text())
    card.write_text(json.dumps({**written, "settings": {**written["settings"], "vocab_size": 32000}}))
    config = config_from_preset("15b", card)
    assert config.vocab_size == 32000 and config.hidden_size == 6144

    card.write_text(json.dumps({"pieces": 32000}))
    with pytest.raises(ValueError, match="vocab_size"):
        vocab_size_from_card(card)
    card.write_text(json.dumps({"vocab_size": 32000}))  # not where `tokenizer train` records it
    with pytest.raises(ValueError, match="vocab_size"):
        vocab_size_from_card(card)
    with pytest.raises(ValueError, match="choose one of"):
        config_from_preset("7b")


def test_refuses_sequences_longer_than_configured():
    model = Nemotron(replace(PRESETS["tiny"], seq_length=8))
    with pytest.raises(ValueError, match="seq_length 8"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_tiny_model_learns_real_text_with_the_fused_path():
    """A few AdamW steps on bytes of a real source file, through every Triton kernel (interpreted on CPU)."""
    torch.manual_seed(0)
    config = replace(PRESETS["tiny"], seq_length=24)
    batch = 2
    text = Path(json.__file__).read_bytes()[: batch * (config.seq_length + 1)]
    tokens = torch.tensor(list(text), dtype=torch.long).view(batch, config.seq_length + 1)
    input_ids, targets = tokens[:, :-1], tokens[:, 1:]
    model = Nemotron(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)

    losses = []
    for _ in range(6):
        loss = model(input_ids, targets)
        assert type(loss.grad_fn).__name__ == "FusedLinearCrossEntropyFunctionBackward"
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    assert losses[0] == pytest.approx(math.log(config.vocab_size), rel=0.05)  # uniform at init
    assert losses[-1] < 0.8 * losses[0]
    assert all(later < earlier for earlier, later in itertools.pairwise(losses))
