"""The embedded Ray listens on loopback only, with token authentication on (issue 15, defect 10),
and starts none of the head's daemons it never uses (issue 16).

A fresh embedded Ray (not the test session's) runs a real `ingest` in a child process;
before the executor closes, that child lists the listening TCP sockets of every process
of its tree (the driver, gcs_server, raylet, the agents and the workers that ran the
units) and every process's command line.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

from corpusmill.curation.dataset import Dataset

RUN_AND_LIST_SOCKETS = """
import json, sys
import psutil
from ray._raylet import AuthenticationMode, get_authentication_mode
from corpusmill.curation.ingest.stage import IngestOptions, ingest
from corpusmill.pipelines.execution import RayExecutor

executor = RayExecutor()
ingest(IngestOptions(inputs=(sys.argv[1],), out=sys.argv[2]), executor=executor)
listening, commands = [], []
for process in [psutil.Process(), *psutil.Process().children(recursive=True)]:
    try:
        name, sockets, command = process.name(), process.net_connections("inet"), " ".join(process.cmdline())
    except psutil.Error:
        continue
    listening += [(name, s.laddr.ip, s.laddr.port) for s in sockets if s.status == psutil.CONN_LISTEN]
    commands.append(command)
token_auth = get_authentication_mode() == AuthenticationMode.TOKEN
executor.close()
print(json.dumps({"listening": listening, "token_auth": token_auth, "commands": commands}))
"""


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)  # an IPv6 socket bound to ::ffff:127.0.0.1
    return (mapped or address).is_loopback


def test_embedded_ray_listens_on_loopback_only_with_token_auth(small_corpus: Path, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env["HOME"] = str(tmp_path)  # Ray's default token goes to ~/.ray/auth_token: this test's own
    out = tmp_path / "ingested"
    result = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_SOCKETS, str(small_corpus / "books.jsonl"), str(out)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert Dataset.open(out).num_rows == 15  # the run was real
    report = json.loads(result.stdout.strip().splitlines()[-1])
    listening = [tuple(entry) for entry in report["listening"]]
    names = {name for name, _, _ in listening}
    assert {"gcs_server", "raylet"} <= names, listening
    assert any(name.startswith("ray::") and "Agent" not in name for name in names), listening  # a worker
    exposed = [entry for entry in listening if not is_loopback(entry[1])]
    assert exposed == [], f"listening beyond loopback: {exposed}"
    assert report["token_auth"]
    assert (tmp_path / ".ray" / "auth_token").read_text().strip()


def test_embedded_ray_starts_no_api_server_and_no_autoscaler_monitor(small_corpus: Path, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env["HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_SOCKETS, str(small_corpus / "books.jsonl"), str(tmp_path / "out")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    commands = json.loads(result.stdout.strip().splitlines()[-1])["commands"]
    assert any("gcs_server" in command for command in commands), commands  # the tree was seen
    assert any("log_monitor.py" in command for command in commands), commands  # kept: workers' output
    unused = [c for c in commands if "dashboard/dashboard.py" in c or "autoscaler/_private/monitor.py" in c]
    assert unused == []
