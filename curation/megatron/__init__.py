"""Tokenized shards: documents encoded into Megatron-LM's indexed format, one prefix per blend component."""
