"""`corpusmill submit` and `corpusmill jobs` against a real Ray head on loopback, token authentication on.

The head runs in its own process group, with its own token (RAY_AUTH_TOKEN_PATH), HOME and
temp dir, on free ports; the test stops that group and only that group. A pipeline submitted
to it must produce what a local `corpusmill run` of the same pipeline produces, row for row.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

from corpusmill.curation.dataset import Dataset
from corpusmill.pipelines.cli import main

BIN = Path(sys.executable).parent
LICENSES = Path("/usr/share/common-licenses")
PIPELINE = f"""\
name: licenses
variables:
  licenses: {LICENSES}
profiles:
  two:
    steps:
      dedup_exact: {{partitions: 2}}
steps:
  - stage: ingest
    inputs: ["{{licenses}}=licenses", "{{licenses}}=mirror"]
    out: "{{out}}/ingested"
  - stage: dedup exact
    input: "{{out}}/ingested"
    out: "{{out}}/dedup_exact"
"""


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@dataclass(frozen=True)
class Head:
    url: str
    env: dict[str, str]  # what a client holding the cluster's token runs with
    home: Path


def _live_members(pgid: int) -> list[int]:
    """Processes of the group that still run (zombies waiting for their parent do not)."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return members


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    root = tmp_path_factory.mktemp("cluster")
    home = root / "home"
    home.mkdir()
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env.update(HOME=str(home), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), PATH=f"{BIN}:{env['PATH']}")
    gcs, dashboard, client, agent_http, agent_grpc, runtime_env, metrics = free_ports(7)
    temp_dir = tempfile.mkdtemp(prefix="rayh", dir="/tmp")  # Unix socket paths must stay short
    command = [
        BIN / "ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
        "--include-dashboard=true", f"--port={gcs}", f"--dashboard-port={dashboard}",
        f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent_http}",
        f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={runtime_env}",
        f"--metrics-export-port={metrics}", "--num-cpus=2", f"--temp-dir={temp_dir}", "--disable-usage-stats",
    ]  # fmt: skip
    log = open(root / "head.log", "w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 240  # a busy two-core machine is slow to start one
        while True:  # the Jobs API answers, with our token, once the dashboard's job module is up
            assert process.poll() is None, (root / "head.log").read_text()[-3000:]
            try:
                answer = requests.get(f"{url}/api/jobs/", headers={"Authorization": f"Bearer {token.read_text()}"}, timeout=5)
                if answer.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the Ray head's dashboard did not come up"
            time.sleep(1)
        assert requests.get(f"{url}/api/jobs/", timeout=5).status_code == 401  # authentication is on
        yield Head(url, env, home)
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # `ray start --block` stops what it started ...
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # ... and what it has not stopped by now goes with the group
        process.wait()
        deadline = time.monotonic() + 20
        while _live_members(process.pid):
            assert time.monotonic() < deadline, "processes of the head's group outlived it"
            time.sleep(0.2)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def corpusmill(*args: str, env: dict[str, str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BIN / "corpusmill", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def corpusmill_all(
    commands: dict[str, tuple[list[str], dict[str, str]]], *, cwd: Path
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Several CLI commands (name -> arguments, environment) at once: each is mostly Python and Ray start-up."""
    started = {
        name: subprocess.Popen([BIN / "corpusmill", *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, (args, env) in commands.items()
    }  # fmt: skip
    results = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=240)
        results[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return results


def _rows(run: Path, step: str) -> list[dict]:
    return Dataset.open(run / step).read_table().sort_by("id").to_pylist()


@pytest.mark.usefixtures("ray_session")
def test_a_submitted_pipeline_makes_what_a_local_run_makes(head: Head, tmp_path: Path) -> None:
    pipeline = tmp_path / "licenses.yaml"
    pipeline.write_text(PIPELINE)
    local, remote = tmp_path / "local", tmp_path / "remote"
    command = [BIN / "corpusmill", "submit", str(pipeline), "--address", head.url, "--out", str(remote), "--profile", "two", "--wait"]
    with subprocess.Popen(command, env=head.env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as job:
        with contextlib.redirect_stdout(io.StringIO()):  # meanwhile the same run here, on this session's Ray
            assert main(["run", str(pipeline), "--out", str(local), "--profile", "two"]) == 0
        stdout, stderr = job.communicate(timeout=300)
    submitted = subprocess.CompletedProcess(command, job.returncode, stdout, stderr)
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    first = submitted.stdout.splitlines()[0]
    assert first.startswith("submitted raysubmit_") and f"licenses -> {remote}" in first
    job_id = first.split()[1]
    assert "== step 2/2 dedup_exact (dedup exact)" in submitted.stdout  # the job's log, streamed
    assert "== pipeline licenses (profile two): 2 of 2 steps run" in submitted.stdout
    assert submitted.stdout.rstrip().endswith(f"job {job_id} SUCCEEDED")

    for step in ("ingested", "dedup_exact"):
        assert _rows(remote, step) == _rows(local, step), step
        assert json.loads((remote / step / "stats.json").read_text()) == json.loads((local / step / "stats.json").read_text())
    assert json.loads((remote / "dedup_exact" / "stats.json").read_text())["removed"]["exact_duplicate"]["docs"] > 0

    results = corpusmill_all(
        {
            "status": (["jobs", "status", job_id, "--address", head.url], head.env),
            "list": (["jobs", "list", "--address", head.url], head.env),
            "logs": (["jobs", "logs", job_id, "--address", head.url], head.env),
            "stop": (["jobs", "stop", job_id, "--address", head.url], head.env),
            "unknown": (["jobs", "status", "raysubmit_nosuchjob", "--address", head.url], head.env),
        },
        cwd=tmp_path,
    )
    status = results["status"]
    assert status.returncode == 0 and status.stdout.startswith(f"{job_id}: SUCCEEDED"), status.stderr
    assert f"licenses -> {remote}" in status.stdout
    listed = results["list"].stdout.splitlines()
    assert any(line.startswith(job_id) and "SUCCEEDED" in line for line in listed), listed
    assert "== pipeline licenses" in results["logs"].stdout
    assert results["stop"].stdout.strip() == f"{job_id}: already SUCCEEDED"
    assert results["unknown"].returncode == 2 and "has no such job" in results["unknown"].stderr


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("corpusmill: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_a_missing_or_wrong_token_is_a_one_line_fix(head: Head, tmp_path: Path) -> None:
    bare = {key: value for key, value in head.env.items() if not key.startswith("RAY_")}  # no token anywhere
    wrong = {**bare, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    no_token = {**bare, "RAY_AUTH_MODE": "token"}
    listing = ["jobs", "list", "--address", head.url]
    results = corpusmill_all({"bare": (listing, bare), "wrong": (listing, wrong), "no_token": (listing, no_token)}, cwd=tmp_path)
    errors = {name: _one_line_error(result) for name, result in results.items()}
    assert f"the Ray cluster at {head.url} requires a token, and RAY_AUTH_MODE is unset here" in errors["bare"]
    assert "RAY_AUTH_TOKEN_PATH" in errors["bare"] and "~/.ray/auth_token" in errors["bare"]
    assert f"the Ray cluster at {head.url} refused the token from $RAY_AUTH_TOKEN: it is not that cluster's token" in errors["wrong"]
    assert "RAY_AUTH_MODE=token but no token found" in errors["no_token"]
    # With the token in Ray's default place and no mode chosen, token mode is switched on, as `ray start` does.
    (head.home / ".ray").mkdir(exist_ok=True)
    (head.home / ".ray" / "auth_token").write_text(Path(head.env["RAY_AUTH_TOKEN_PATH"]).read_text())
    try:
        listed = corpusmill("jobs", "list", "--address", head.url, env=bare, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
    finally:
        (head.home / ".ray" / "auth_token").unlink()
