"""Nemotron-4 decoder (arXiv:2402.16819, 2406.11704), top to bottom on one screen.

Pre-norm blocks of LayerNorm1P, grouped-query attention with partial rotary embeddings, and a
squared-ReLU MLP; untied input and output embeddings; no biases in linear layers; no dropout.
The norm, RoPE, activation and loss call fused Triton kernels, which fall back to plain PyTorch by
themselves. Parallelism (FSDP, tensor parallel) is applied from outside; this file knows none of it.
Module names follow Hugging Face's ``NemotronForCausalLM`` so its checkpoints map one to one.
"""

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from corpusmill.tokenizer.card import TokenizerCard
from corpusmill.trainer.kernels.fused_linear_cross_entropy import fused_linear_cross_entropy
from corpusmill.trainer.kernels.layer_norm_1p import layer_norm_1p
from corpusmill.trainer.kernels.partial_rope import partial_rope, rope_tables
from corpusmill.trainer.kernels.squared_relu import squared_relu


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


class LayerNorm1P(nn.Module):
    """LayerNorm whose scale is stored zero-centred (scale = weight + 1), so weight decay pulls it to 1."""

    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(size))
        self.bias = nn.Parameter(torch.zeros(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm_1p(x, self.weight, self.bias, self.eps)


class Attention(nn.Module):
    def __init__(self, config: NemotronConfig):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = config.num_heads, config.num_kv_heads, config.head_dim
        self.q_proj = nn.Linear(config.hidden_size, config.num_heads * config.head_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, config.num_kv_heads * config.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, config.num_kv_heads * config.head_dim, bias=False)
        self.o_proj = nn.Linear(config.num_heads * config.head_dim, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, seq_len, _ = x.shape
        q = self.q_proj(x).view(batch, seq_len, self.num_heads, self.head_dim)
        k = self.k_proj(x).view(batch, seq_len, self.num_kv_heads, self.head_dim)
        v = self.v_proj(x).view(batch, seq_len, self.num_kv_heads, self.head_dim)
        q, k = partial_rope(q, k, cos, sin)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, enable_gqa=True
        )
        return self.o_proj(y.transpose(1, 2).reshape(batch, seq_len, -1))


class MLP(nn.Module):
    def __init__(self, config: NemotronConfig):
        super().__init__()
        self.up_proj = nn.Linear(config.hidden_size, config.ffn_hidden_size, bias=False)
        self.down_proj = nn.Linear(config.ffn_hidden_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(squared_relu(self.up_proj(x)))


class Block(nn.Module):
    def __init__(self, config: NemotronConfig):
        super().__init__()
        self.input_layernorm = LayerNorm1P(config.hidden_size, config.norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = LayerNorm1P(config.hidden_size, config.norm_eps)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class LMHead(nn.Module):
    """Untied output projection; given targets it returns the loss and never holds the full logits."""

    def __init__(self, hidden_size: int, vocab_size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, hidden_size))

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        if targets is None:
            return F.linear(x, self.weight)
        return fused_linear_cross_entropy(x, self.weight, targets)


class Nemotron(nn.Module):
    def __init__(self, config: NemotronConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm = LayerNorm1P(config.hidden_size, config.norm_eps)
        self.lm_head = LMHead(config.hidden_size, config.vocab_size)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Normal(0, init_std) matrices, divided by sqrt(2 x layers) for the two projections that write
        into the residual stream (Megatron's scaled init); norms start at scale 1, shift 0.

        Call it again after building on the meta device and materialising with ``to_empty``.
        """
        residual_std = self.config.init_std / math.sqrt(2 * self.config.num_layers)
        for name, param in self.named_parameters():
            if param.ndim == 1:
                nn.init.zeros_(param)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(param, mean=0.0, std=residual_std)
            else:
                nn.init.normal_(param, mean=0.0, std=self.config.init_std)

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(batch, seq, vocab)``, or with ``targets`` (the next token at each position,
        ``IGNORE_INDEX`` = -100 where none) the mean cross-entropy, computed without materialising logits."""
        seq_len = input_ids.shape[1]
        if seq_len > self.config.seq_length:
            raise ValueError(
                f"sequence of {seq_len} tokens is longer than the model's seq_length {self.config.seq_length}"
            )
        cos, sin = rope_tables(seq_len, self.config.rotary_dim, self.config.rope_theta, input_ids.device)
        x = self.embed_tokens(input_ids)
        for block in self.layers:
            x = block(x, cos, sin)
        return self.lm_head(self.norm(x), targets)
