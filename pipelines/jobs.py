"""`corpusmill submit` and `corpusmill jobs status|logs|stop|list`: pipelines as Ray jobs on a cluster.

A submission is a ``corpusmill run`` on the cluster, through the Ray Jobs API
(``ray.job_submission.JobSubmissionClient``, served by the head's dashboard):

* the project travels as the job's ``working_dir`` (a copy of the checkout without
  ``.git``, ``.venv``, caches and outputs; a pipeline file from outside the checkout goes
  in ``_submitted/``), so relative paths in a pipeline (``blend_specs/...``) mean the same
  as at home;
* the ``corpusmill`` package travels as its ``py_modules``, so the job's driver and every
  worker import this checkout's code; the cluster needs only the third-party packages;
* the entrypoint is ``python -m corpusmill.pipelines.cli run PIPELINE --out DIR ...``.

The pipeline is planned here first, so a bad key or profile fails before anything is
sent; files it reads are checked on the cluster, where they live.

Authentication: Ray >= 2.52 guards a cluster with a token. The client sends it the way
Ray's own tools do: ``RAY_AUTH_MODE=token`` and the token from ``$RAY_AUTH_TOKEN``, the file
named by ``$RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``. When ``RAY_AUTH_MODE`` is unset
and one of those holds a token, token mode is switched on for this process, as
``ray start`` does. A missing or refused token is a one-line error that says what to set;
nothing here ever turns authentication off.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpusmill.curation.command import TOOL, StageCommand
from corpusmill.curation.errors import ConfigError, CorpusmillError
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import APPEND, option
from corpusmill.pipelines.pipeline import load_pipeline, plan_pipeline

AUTH_MODE = "RAY_AUTH_MODE"
TOKEN_VARIABLE = "RAY_AUTH_TOKEN"
TOKEN_PATH_VARIABLE = "RAY_AUTH_TOKEN_PATH"
ADDRESS_VARIABLES = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
SUBMITTED_DIR = "_submitted"
EXCLUDED = (
    ".git", ".venv", "*.egg-info", "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis", "build", "demo_out",
    "bench_data",
)  # fmt: skip
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
TOKEN_PLACES = f"${TOKEN_VARIABLE}, a file named by ${TOKEN_PATH_VARIABLE}, or ~/.ray/auth_token"


class ClusterError(CorpusmillError):
    """The cluster cannot be reached, refuses us, or does not know the job; the message says what to do."""


# --- authentication ------------------------------------------------------------------------------


def token_source() -> str | None:
    """Where Ray would read the token from, in Ray's order, or None when none of its places holds one."""
    if os.environ.get(TOKEN_VARIABLE, "").strip():
        return f"${TOKEN_VARIABLE}"
    named = os.environ.get(TOKEN_PATH_VARIABLE)
    if named:
        return f"${TOKEN_PATH_VARIABLE} ({named})" if _has_text(Path(named).expanduser()) else None
    default = Path.home() / ".ray" / "auth_token"
    return str(default).replace(str(Path.home()), "~", 1) if _has_text(default) else None


def _has_text(path: Path) -> bool:
    try:
        return bool(path.read_text().strip())
    except OSError:
        return False


def prepare_authentication(address: str) -> None:
    """Token mode on when a token is there and no mode was chosen (as ``ray start`` does); refuse a token mode without a token."""
    mode = os.environ.get(AUTH_MODE)
    source = token_source()
    if mode is None and source is not None:
        os.environ[AUTH_MODE] = "token"
    elif mode == "token" and source is None:
        raise ClusterError(
            f"{AUTH_MODE}=token but no token found: put the token of the cluster at {address} "
            f"(`ray get-auth-token` on its head) in {TOKEN_PLACES}"
        )


def _authentication_fix(address: str, status: int) -> str:
    mode = os.environ.get(AUTH_MODE)
    if status == 403:
        return (
            f"the Ray cluster at {address} refused the token from {token_source()}: it is not that cluster's token; "
            f"put the right one (`ray get-auth-token` on its head) in {TOKEN_PLACES}"
        )
    if mode != "token":
        return (
            f"the Ray cluster at {address} requires a token, and {AUTH_MODE} is {mode or 'unset'} here: set "
            f"{AUTH_MODE}=token and put the cluster's token (`ray get-auth-token` on its head) in {TOKEN_PLACES}"
        )
    return f"the Ray cluster at {address} requires a token and none was sent: put it in {TOKEN_PLACES}"


# --- the client ----------------------------------------------------------------------------------


def resolve_address(address: str | None) -> str:
    """The dashboard's URL: ``--address``, else ``$RAY_API_SERVER_ADDRESS``, else an http(s) ``$RAY_ADDRESS``."""
    for candidate in (address, *(os.environ.get(name) for name in ADDRESS_VARIABLES)):
        if candidate:
            if not candidate.startswith(("http://", "https://")):
                raise ConfigError(
                    f"--address {candidate}: give the head's dashboard URL, e.g. http://HEAD:8265 "
                    "(the Jobs API is served by the dashboard, not the GCS port)"
                )
            return candidate.rstrip("/")
    raise ConfigError("--address: give the head's dashboard URL, e.g. --address http://HEAD:8265")


@contextlib.contextmanager
def cluster_errors(address: str) -> Iterator[None]:
    """Ray's connection, authentication and not-found errors as one-line fixes."""
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError as error:
        status = 403 if "Authentication failed" in error.message else 401
        raise ClusterError(_authentication_fix(address, status)) from None
    except ConnectionError:
        raise ClusterError(
            f"no Ray dashboard answers at {address}: check the address, and that the head was started with "
            "`ray start --head --include-dashboard=true` (`ray[default]` installed)"
        ) from None
    except RuntimeError as error:
        text = str(error)
        if "does not exist" in text or "status code 404" in text:
            raise ClusterError(f"the cluster at {address} has no such job: {text.splitlines()[0]}") from None
        raise


def connect(address: str | None) -> tuple[Any, str]:
    """A Jobs API client for the cluster, and its URL; ``--address`` wins over Ray's address variables."""
    url = resolve_address(address)
    prepare_authentication(url)
    from ray.job_submission import JobSubmissionClient

    hidden = {name: os.environ.pop(name) for name in ADDRESS_VARIABLES if name in os.environ}
    try:
        with cluster_errors(url):
            return JobSubmissionClient(url), url
    finally:
        os.environ.update(hidden)


# --- submit --------------------------------------------------------------------------------------


def project_root() -> Path:
    """The checkout this corpusmill runs from (it holds pyproject.toml): what travels as the working_dir."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").exists():
        raise ClusterError(f"{root} is not a corpusmill checkout; `corpusmill submit` runs from a checkout (git clone)")
    return root


def stage_working_dir(root: Path, pipeline: Path, exclude: list[Path]) -> tuple[Path, str]:
    """A copy of the project for the job, and the pipeline's path inside it."""
    staging = Path(tempfile.mkdtemp(prefix="corpusmill-job-")) / "project"
    skipped = {path.resolve() for path in exclude}
    patterns = shutil.ignore_patterns(*EXCLUDED)

    def ignore(directory: str, names: list[str]) -> set[str]:
        return set(patterns(directory, names)) | {n for n in names if (Path(directory) / n).resolve() in skipped}

    shutil.copytree(root, staging, ignore=ignore, symlinks=True)
    pipeline = pipeline.resolve()
    if pipeline.is_relative_to(root):
        return staging, str(pipeline.relative_to(root))
    (staging / SUBMITTED_DIR).mkdir(exist_ok=True)
    shutil.copy2(pipeline, staging / SUBMITTED_DIR / pipeline.name)
    return staging, f"{SUBMITTED_DIR}/{pipeline.name}"


@dataclass(frozen=True, kw_only=True)
class SubmitOptions:
    """`corpusmill submit PIPELINE --address http://HEAD:8265 --out DIR [--profile NAME] [--set ...] [--wait]`."""

    pipeline: str = option(positional=True, help="pipeline YAML, e.g. pipelines/nemotron4.yaml")
    address: str | None = option(None, help="the head's dashboard URL, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS)")
    out: str = option(help="root directory of the run on the cluster: an absolute path every node sees")
    profile: str | None = option(None, help="a profile of the pipeline (its `profiles:`)")
    settings: tuple[str, ...] = option(
        (), cli=APPEND, flag="--set", metavar="STEP.KEY=VALUE", help="as for `corpusmill run` (repeatable)"
    )
    wait: bool = option(False, help="stream the job's logs until it ends; fail unless it succeeded")


@dataclass(frozen=True)
class Submitted:
    submission_id: str
    address: str
    status: str | None  # the final status with --wait


def submit(options: SubmitOptions, *, executor: Executor, overwrite: bool = False) -> Submitted:
    """Plan the pipeline here, then submit it as a ``corpusmill run`` job; with ``--wait``, follow it to its end."""
    if not os.path.isabs(options.out):
        raise ConfigError(f"--out {options.out}: give an absolute path on the cluster's shared filesystem")
    pipeline = load_pipeline(options.pipeline)
    plan_pipeline(pipeline, out=options.out, profile=options.profile, settings=options.settings, check_paths=False)
    client, url = connect(options.address)
    from corpusmill.pipelines.execution import staged_package

    root = project_root()
    working_dir, pipeline_path = stage_working_dir(root, Path(options.pipeline), [Path(options.out)])
    package = staged_package()
    command = ["python", "-m", "corpusmill.pipelines.cli", "run", pipeline_path, "--out", options.out]
    if options.profile:
        command += ["--profile", options.profile]
    for setting in options.settings:
        command += ["--set", setting]
    metadata = {"corpusmill_pipeline": pipeline.name, "corpusmill_out": options.out, "corpusmill_profile": options.profile or ""}
    try:
        with cluster_errors(url):
            submission_id = client.submit_job(
                entrypoint=shlex.join(command),
                runtime_env={"working_dir": str(working_dir), "py_modules": [str(package)]},
                metadata=metadata,
            )
    finally:
        shutil.rmtree(working_dir.parent, ignore_errors=True)
        shutil.rmtree(package.parent, ignore_errors=True)
    print(f"submitted {submission_id} to {url}: {pipeline.name} -> {options.out}", flush=True)
    if not options.wait:
        print(f"follow it: corpusmill jobs logs {submission_id} --follow --address {url}")
        return Submitted(submission_id, url, None)
    follow_logs(client, url, submission_id)
    status = _wait_for_end(client, url, submission_id)
    if status != "SUCCEEDED":
        with cluster_errors(url):
            message = client.get_job_info(submission_id).message or ""
        raise ClusterError(f"job {submission_id} ended {status}: {message}".rstrip(": "))
    return Submitted(submission_id, url, status)


def render_submitted(result: Submitted) -> str | None:
    return f"job {result.submission_id} {result.status}" if result.status else None


# --- jobs ----------------------------------------------------------------------------------------


def follow_logs(client: Any, url: str, submission_id: str) -> None:
    """Stream the job's output to stdout until the job ends (the Jobs API's websocket tail)."""

    async def tail() -> None:
        async for chunk in client.tail_job_logs(submission_id):
            sys.stdout.write(chunk)
            sys.stdout.flush()

    with cluster_errors(url):
        client.get_job_status(submission_id)  # a clear error for an unknown job before the websocket
        asyncio.run(tail())


def _wait_for_end(client: Any, url: str, submission_id: str, poll_s: float = 0.5) -> str:
    with cluster_errors(url):
        while (status := str(client.get_job_status(submission_id))) not in TERMINAL:
            time.sleep(poll_s)
    return status


@dataclass(frozen=True, kw_only=True)
class JobsOptions:
    """`corpusmill jobs list --address URL`."""

    address: str | None = option(None, help="the head's dashboard URL, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS)")


@dataclass(frozen=True, kw_only=True)
class JobOptions(JobsOptions):
    """`corpusmill jobs status|stop JOB_ID --address URL`."""

    job_id: str = option(positional=True, help="the submission id `corpusmill submit` printed (raysubmit_...)")


@dataclass(frozen=True, kw_only=True)
class LogsOptions(JobOptions):
    """`corpusmill jobs logs JOB_ID [--follow] --address URL`."""

    follow: bool = option(False, help="keep streaming until the job ends")


def _time(milliseconds: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(milliseconds / 1000)) if milliseconds else "-"


def _job_row(job: Any) -> dict[str, str]:
    metadata = job.metadata or {}
    what = metadata.get("corpusmill_pipeline")
    if what:
        what = f"{what} -> {metadata.get('corpusmill_out', '?')}"
    return {
        "id": job.submission_id or job.job_id or "?",
        "status": str(job.status),
        "started": _time(job.start_time),
        "ended": _time(job.end_time),
        "what": what or job.entrypoint,
    }


def list_jobs(options: JobsOptions, *, executor: Executor, overwrite: bool = False) -> list[dict[str, str]]:
    client, url = connect(options.address)
    with cluster_errors(url):
        jobs = client.list_jobs()
    return sorted((_job_row(job) for job in jobs), key=lambda row: row["started"])


def render_jobs(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "no jobs"
    header = {"id": "submission id", "status": "status", "started": "started", "ended": "ended", "what": "pipeline"}
    widths = {key: max(len(header[key]), *(len(row[key]) for row in rows)) for key in header}
    return "\n".join(
        "  ".join(row[key].ljust(widths[key]) for key in header).rstrip() for row in [header, *rows]
    )


def job_status(options: JobOptions, *, executor: Executor, overwrite: bool = False) -> dict[str, str]:
    client, url = connect(options.address)
    with cluster_errors(url):
        info = client.get_job_info(options.job_id)
    return {**_job_row(info), "message": info.message or ""}


def render_status(row: dict[str, str]) -> str:
    lines = [f"{row['id']}: {row['status']}", f"  pipeline: {row['what']}", f"  started {row['started']}, ended {row['ended']}"]
    if row["message"]:
        lines.append(f"  {row['message']}")
    return "\n".join(lines)


def job_logs(options: LogsOptions, *, executor: Executor, overwrite: bool = False) -> None:
    client, url = connect(options.address)
    if options.follow:
        follow_logs(client, url, options.job_id)
        return
    with cluster_errors(url):
        sys.stdout.write(client.get_job_logs(options.job_id))
    sys.stdout.flush()


def stop_job(options: JobOptions, *, executor: Executor, overwrite: bool = False) -> str:
    client, url = connect(options.address)
    with cluster_errors(url):
        if client.stop_job(options.job_id):
            return f"{options.job_id}: stop requested"
        return f"{options.job_id}: already {client.get_job_status(options.job_id)}"


COMMANDS = [
    StageCommand(
        ("submit",), "submit a pipeline to a Ray cluster as a job (the project travels with it)", SubmitOptions,
        submit, render_submitted, kind=TOOL,
    ),
    StageCommand(("jobs", "list"), "jobs on the cluster, oldest first", JobsOptions, list_jobs, render_jobs, kind=TOOL),
    StageCommand(("jobs", "status"), "a job's status and message", JobOptions, job_status, render_status, kind=TOOL),
    StageCommand(("jobs", "logs"), "a job's output so far (--follow: until it ends)", LogsOptions, job_logs, kind=TOOL),
    StageCommand(("jobs", "stop"), "stop a running job", JobOptions, stop_job, lambda text: text, kind=TOOL),
]  # fmt: skip
