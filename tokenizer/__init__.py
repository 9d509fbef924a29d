"""corpusmill: tokenizer."""
