"""The one base class of errors a user can cause and fix.

The CLI catches :class:`CorpusmillError` in one place and prints its message as a
single line, without a traceback: the message must say what to change. Every other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class CorpusmillError(Exception):
    """A problem with the user's input, settings or output directory; the message names the fix."""


class ConfigError(CorpusmillError, ValueError):
    """A setting, or a combination of settings, that cannot work; the message names the option."""


class MissingFileError(CorpusmillError, FileNotFoundError):
    """A file the user named (a model, a spec, an input) does not exist."""
