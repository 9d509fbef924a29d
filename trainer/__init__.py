"""corpusmill: trainer."""
