"""One writer per output directory: an exclusive lock held by the driver, an owner token checked by workers.

The driver of a stage run takes an exclusive ``flock`` on ``_progress/lock`` in the output
directory and holds it until the run publishes its marker (or the process ends: the kernel
drops the lock of a killed process, so a crash never leaves a stale lock behind). A second
run into the same directory is refused at once, naming the holder.

Workers (Ray tasks, possibly on other nodes) cannot share the driver's lock, so the driver
also writes ``_progress/owner.json`` with a token unique to its attempt; every unit checks the
token before it starts and before it records completion, so a stray worker of an earlier,
interrupted run can never record work into a directory another run now owns.

On shared filesystems the lock is as good as the filesystem's locking: Linux NFS clients
implement ``flock`` with NFS byte-range locks, which other clients see (NFSv4, or NFSv3 with
lockd) unless the filesystem is mounted ``nolock`` / ``local_lock=all``; Lustre needs the
``flock`` mount option (``localflock`` locks only within one node). A filesystem that refuses
locks is reported with that fix rather than silently run unlocked.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from corpusmill.curation.atomic import read_json, write_json_atomic
from corpusmill.curation.errors import CorpusmillError

LOCK_FILE = "lock"
OWNER_FILE = "owner.json"
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}

# Locks this process holds, by lock directory: taking one again in the same process (a stage
# re-run after an exception, in a test or a notebook) reuses it instead of deadlocking on itself.
_HELD: dict[str, int] = {}


class OutputBusyError(CorpusmillError, RuntimeError):
    """Another run is writing (or took over) the same output directory."""


def acquire(directory: Path, out: Path, attempt: str, stage: str) -> None:
    """Take the exclusive lock in ``directory`` (created if needed) and record ``attempt`` as the owner."""
    key = str(directory.resolve())
    if key not in _HELD:
        directory.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(descriptor)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise OutputBusyError(
                    f"{out} is being written by another corpusmill run ({describe_owner(directory)}); "
                    "wait for it to finish, or choose another --out"
                ) from error
            if error.errno in _UNSUPPORTED:
                raise OutputBusyError(
                    f"{out}: the filesystem refuses file locks ({error.strerror}); mount it with locking "
                    "(NFS: not `nolock`; Lustre: `-o flock`) or write --out to a local disk"
                ) from error
            raise
        _HELD[key] = descriptor
    write_json_atomic(directory / OWNER_FILE, _owner_record(attempt, stage))


@contextmanager
def held(directory: Path, out: Path, stage: str) -> Iterator[None]:
    """The lock for a command that writes its whole output at once in the driver (blend resolve):
    no units to check an owner token, so holding the lock while writing is all it takes."""
    acquire(directory, out, uuid.uuid4().hex, stage)
    try:
        yield
    finally:
        release(directory)


def release(directory: Path) -> None:
    """Drop the lock (closing the descriptor releases the flock)."""
    descriptor = _HELD.pop(str(directory.resolve()), None)
    if descriptor is not None:
        os.close(descriptor)


def check_owner(directory: Path, out: Path, attempt: str) -> None:
    """Raise unless ``attempt`` still owns the directory: what a worker asks before writing."""
    owner = directory / OWNER_FILE
    recorded = read_json(owner).get("attempt") if owner.exists() else None
    if recorded != attempt:
        raise OutputBusyError(
            f"{out} was taken over by another corpusmill run ({describe_owner(directory)}) while this one "
            "was running; this run stops without recording more work"
        )


def describe_owner(directory: Path) -> str:
    owner = directory / OWNER_FILE
    if not owner.exists():
        return "owner unknown"
    record = read_json(owner)
    return f"{record.get('stage')}, pid {record.get('pid')} on {record.get('host')}, since {record.get('since')}"


def _owner_record(attempt: str, stage: str) -> dict[str, Any]:
    return {
        "attempt": attempt,
        "stage": stage,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
