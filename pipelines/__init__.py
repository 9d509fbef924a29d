"""corpusmill: pipelines."""
