"""Nemotron-4 model shapes: the config dataclass, the paper's presets and their FLOPs per token.

Kept apart from the model so that choosing or validating a shape (the CLI, run specs, the report)
does not import torch.
"""

from dataclasses import dataclass, replace
from pathlib import Path

from corpusmill.tokenizer.card import TokenizerCard


@dataclass(frozen=True)
class NemotronConfig:
    num_layers: int
    hidden_size: int
    ffn_hidden_size: int
    num_heads: int
    num_kv_heads: int
    seq_length: int
    vocab_size: int
    rotary_fraction: float = 0.5
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be a multiple of num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} must be a multiple of num_kv_heads {self.num_kv_heads}")
        rotary_dim = self.head_dim * self.rotary_fraction
        if rotary_dim != int(rotary_dim) or int(rotary_dim) % 2 or not 0 < rotary_dim <= self.head_dim:
            raise ValueError(
                f"rotary_fraction {self.rotary_fraction} of head_dim {self.head_dim} must give an even, "
                "positive number of rotated features"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.rotary_fraction)


# The paper's models (init_std from NVIDIA's NeMo recipes), one that fits a single GPU, and one for tests.
PRESETS: dict[str, NemotronConfig] = {
    "tiny": NemotronConfig(
        num_layers=2, hidden_size=64, ffn_hidden_size=256, num_heads=4, num_kv_heads=2, seq_length=128, vocab_size=256
    ),
    "small": NemotronConfig(
        num_layers=12,
        hidden_size=1024,
        ffn_hidden_size=4096,
        num_heads=16,
        num_kv_heads=8,
        seq_length=4096,
        vocab_size=256000,
    ),
    "15b": NemotronConfig(
        num_layers=32,
        hidden_size=6144,
        ffn_hidden_size=24576,
        num_heads=48,
        num_kv_heads=8,
        seq_length=4096,
        vocab_size=256000,
        init_std=0.0134,
    ),
    "340b": NemotronConfig(
        num_layers=96,
        hidden_size=18432,
        ffn_hidden_size=73728,
        num_heads=96,
        num_kv_heads=8,
        seq_length=4096,
        vocab_size=256000,
        init_std=0.0063,
    ),
}


def vocab_size_from_card(card_path: Path) -> int:
    """The vocabulary size of the tokenizer a `corpusmill tokenizer train` card describes.

    ``card_path`` is its ``card.json`` or the directory holding it; a file that is not such a
    card is a ``ValueError`` naming what it lacks.
    """
    return TokenizerCard.read(card_path).vocab_size


def config_from_preset(name: str, tokenizer_card: Path | None = None) -> NemotronConfig:
    """A preset's shape, with the vocabulary of the tokenizer the data was tokenized with
    (``tokenizer_card``: the card.json `corpusmill tokenizer train` wrote, or its directory)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    if tokenizer_card is None:
        return PRESETS[name]
    return replace(PRESETS[name], vocab_size=vocab_size_from_card(tokenizer_card))


def training_flops_per_token(config: NemotronConfig) -> int:
    """FLOPs to train on one token (forward + backward = 3 x forward), the numerator of MFU.

    Counted as in PaLM (arXiv:2204.02311, appendix B): 6 per matmul weight (every linear layer and
    the output head; the input embedding is a lookup) plus 12 x layers x heads x head_dim x seq for
    attention scores and values, without discounting the causal mask.
    """
    query_width = config.num_heads * config.head_dim
    key_value_width = config.num_kv_heads * config.head_dim
    attention_weights = 2 * config.hidden_size * (query_width + key_value_width)  # q, o; k, v
    mlp_weights = 2 * config.hidden_size * config.ffn_hidden_size  # up, down
    output_weights = config.vocab_size * config.hidden_size
    matmul_weights = config.num_layers * (attention_weights + mlp_weights) + output_weights
    attention_flops = 12 * config.num_layers * query_width * config.seq_length
    return 6 * matmul_weights + attention_flops
