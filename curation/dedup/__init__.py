"""Duplicate removal: exact (hash) and fuzzy (MinHash + LSH)."""
