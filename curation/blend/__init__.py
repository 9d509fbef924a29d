"""Blend specifications: validated YAML, resolved against tokenized shards into per-prefix weights."""
