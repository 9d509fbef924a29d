"""The quality stage's vocabulary: the columns `corpusmill quality` adds and the values they take.

Owned here alone; selections, blends and tokenize's ``--split-by`` import these names.
"""

from __future__ import annotations

import pyarrow as pa

PPL = "ppl"
PPL_BUCKET = "ppl_bucket"
QUALITY_REASONS = "quality_reasons"
QUALITY_BUCKET = "quality_bucket"

HEAD, MIDDLE, TAIL = "head", "middle", "tail"
PPL_BUCKETS = (HEAD, MIDDLE, TAIL)
HIGH, MEDIUM, LOW = "high", "medium", "low"
QUALITY_BUCKETS = (HIGH, MEDIUM, LOW)

# One boolean column per rule family: true = passed, false = failed (its reason is in
# quality_reasons), null = not applied to this document (another category or language).
GOPHER_QUALITY_OK = "gopher_quality_ok"
GOPHER_REPETITION_OK = "gopher_repetition_ok"
C4_QUALITY_OK = "c4_quality_ok"
FINEWEB_QUALITY_OK = "fineweb_quality_ok"
CODE_QUALITY_OK = "code_quality_ok"
RULE_COLUMNS = (GOPHER_QUALITY_OK, GOPHER_REPETITION_OK, C4_QUALITY_OK, FINEWEB_QUALITY_OK, CODE_QUALITY_OK)

OUTPUT_SCHEMA = pa.schema(
    [
        (PPL, pa.float32()),
        (PPL_BUCKET, pa.string()),
        *((column, pa.bool_()) for column in RULE_COLUMNS),
        (QUALITY_REASONS, pa.list_(pa.string())),
        (QUALITY_BUCKET, pa.string()),
    ]
)
