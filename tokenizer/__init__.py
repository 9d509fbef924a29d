"""corpusmill tokenizer stage: `corpusmill tokenizer sample | train | eval`.

sampling.py / composition.py / sample_stage.py   the up-sampled, seeded training sample
training.py / train_stage.py                     SentencePiece BPE training and the model card
codec.py                                         lossless encode/decode with a trained model
evaluation.py / eval_stage.py                    per-language quality report
"""
