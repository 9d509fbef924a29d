"""Nemotron-4 decoder (arXiv:2402.16819, 2406.11704), top to bottom on one screen.

Pre-norm blocks of LayerNorm1P, grouped-query attention with partial rotary embeddings, and a
squared-ReLU MLP; untied input and output embeddings; no biases in linear layers; no dropout.
The norm, RoPE, activation and loss call fused Triton kernels, which fall back to plain PyTorch by
themselves. Parallelism (FSDP, tensor parallel) is applied from outside; this file knows none of it.
Module names follow Hugging Face's ``NemotronForCausalLM`` so its checkpoints map one to one.
"""

import math
import torch
import torch.nn.functional as F
from torch import nn

from corpusmill.trainer.kernels.fused_linear_cross_entropy import fused_linear_cross_entropy
from corpusmill.trainer.kernels.layer_norm_1p import layer_norm_1p
from corpusmill.trainer.kernels.partial_rope import partial_rope, rope_tables
from corpusmill.trainer.kernels.squared_relu import squared_relu
from corpusmill.trainer.presets import NemotronConfig


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
