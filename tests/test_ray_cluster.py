"""`--ray-address`: a stage run against a separately started Ray cluster, as on real nodes."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from corpusmill.curation.dataset import Dataset


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"Ray head did not open port {port}")


def test_stage_runs_on_an_existing_cluster(small_corpus: Path, tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    port = free_port()
    token = tmp_path / "auth_token"  # authentication stays on: head and driver share this token
    token.write_text(secrets.token_hex(32))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "HOME": str(tmp_path)}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN", None)
    ray_temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Unix socket paths must stay short
    head = subprocess.Popen(
        [bin_dir / "ray", "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={ray_temp}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, timeout_s=90)
        out = tmp_path / "ingested"
        result = subprocess.run(
            [bin_dir / "corpusmill", "ingest", str(small_corpus / "books.jsonl"), "--out", str(out),
             "--ray-address", f"127.0.0.1:{port}"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert "ingest: 22 docs" in result.stdout
        assert Dataset.open(out).num_rows == 15
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, 9)
        shutil.rmtree(ray_temp, ignore_errors=True)
