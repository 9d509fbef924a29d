"""Ingest: raw JSONL / Parquet / file trees -> a document dataset, bad input -> rejects."""
