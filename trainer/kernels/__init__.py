"""Fused Triton kernels for the Nemotron-4 trainer, one op per module, each with a PyTorch fallback."""
