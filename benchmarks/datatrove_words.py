"""datatrove's word tokenizer as whitespace words, the way corpusmill shingles text.

datatrove's default English tokenizer needs a spaCy model download; the MinHash comparisons
(`fuzzy_quality.py`, `vs_datatrove.py`) give both tools the same words instead.
"""

from datatrove.utils.word_tokenizers import WordTokenizer


class WhitespaceWords(WordTokenizer):
    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]
