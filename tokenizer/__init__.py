"""corpusmill tokenizer stage: `corpusmill tokenizer sample | train | eval`.

sampling.py / composition.py / sample_stage.py   the up-sampled, seeded training sample
training.py / train_stage.py                     SentencePiece BPE training
card.py                                          the tokenizer card (card.json): its format and typed reader
codec.py                                         the model file, lossless encode/decode with it
evaluation.py / eval_stage.py                    per-language quality report
"""
