"""Quality signals (CCNet perplexity, heuristic and code rules) and the LM they use."""
