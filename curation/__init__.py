"""corpusmill: curation."""
