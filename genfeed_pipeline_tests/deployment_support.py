"""The real processes of a deployment, shared by the tests that drive them (`test_deployment.py`,
`test_new_models_daemon.py`): the fal emulator in a process of its own, `dagster-daemon run` (and, for the
deployment drill, `dagster-webserver`) against `deploy/dagster.yaml` with Dagster's storage in PostgreSQL.
Each runs in a process group of its own with its output in a log file, which `explain` prints when a wait
fails."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from genfeed_pipeline_tests.conftest import TEST_FAL_KEY

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY = REPO_ROOT / "deploy"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def die_with_parent() -> None:
    """In the child, before exec: SIGKILL it if pytest dies without cleaning up (Linux only); its code
    servers stop by themselves when their heartbeat from it ends."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Service:
    """One long-running command in a process group of its own, its output in a log file.

    Stopped with SIGINT to the whole group (the daemon and webserver pass it to their code servers), then
    SIGKILL to the group when it does not exit in time (dagster-1.13.md §9).
    """

    def __init__(
        self, name: str, argv: list[str], env: Mapping[str, str], log_dir: Path, cwd: Path | None = None
    ) -> None:
        # Not the repository by default: the dagster CLIs load a `.env` from their working directory over
        # the environment, and a developer's would point the drill at their own databases.
        self.workdir = cwd or log_dir
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        with self.log_path.open("ab") as log:
            log.write(f"\n==== start {' '.join(self.argv)} at {datetime.now(UTC):%H:%M:%S}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float = 30.0) -> float:
        """Stops the group; returns how long the main process took to exit after SIGINT."""
        process = self.process
        if process is None:
            return 0.0
        started = time.monotonic()
        pgid = process.pid  # start_new_session: the process leads its own group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGINT)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            process.wait(timeout=10)
        took = time.monotonic() - started
        # Children that outlived their parent (a code server, a run worker) go with the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.process = None
        return took

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return f"---- {self.name}: no log"
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"---- {self.name} ({self.log_path}), last {len(text)} lines:\n" + "\n".join(text)


class GraphQLError(Exception):
    pass


class Processes:
    """The services of one drill, and the evidence to print when something goes wrong."""

    def __init__(self, env: Mapping[str, str], log_dir: Path, emulator_port: int) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.emulator_port = emulator_port
        self.services: dict[str, Service] = {}
        self.http = httpx.Client(timeout=60.0)

    # -- lifecycle

    def start_emulator(self, latency: float, *options: str) -> None:
        """(Re)starts the emulator on the drill's port; `options` are more of its command-line flags."""
        self.stop_service("fal_emulator")
        argv = [
            sys.executable,
            "-m",
            "genfeed_pipeline_tests.fal_emulator",
            "--port",
            str(self.emulator_port),
        ]
        argv += ["--latency", str(latency), "--api-key", TEST_FAL_KEY, *options]
        self.services["fal_emulator"] = Service(
            "fal_emulator",
            argv,
            self.env,
            self.log_dir,
            cwd=REPO_ROOT,  # the tests' package is not installed
        ).start()
        self.wait_for(  # asked in find mode: `options` may make list pages fail
            "the fal emulator to answer",
            lambda: self._answers(
                f"http://127.0.0.1:{self.emulator_port}/v1/models?endpoint_id=fal-ai/flux/dev"
            ),
            timeout=60,
            service="fal_emulator",
        )

    def start_daemon(self) -> None:
        workspace = ["-w", str(REPO_ROOT / "workspace.yaml")]
        self.services["daemon"] = Service(
            "daemon", [str(BIN / "dagster-daemon"), "run", *workspace], self.env, self.log_dir
        ).start()

    def stop_service(self, name: str) -> float:
        service = self.services.pop(name, None)
        return service.stop() if service is not None else 0.0

    def close(self) -> None:
        for name in list(self.services):
            self.stop_service(name)
        self.http.close()

    # -- evidence

    def explain(self, message: str) -> str:
        tails = "\n".join(service.tail() for service in self.services.values())
        stopped = [p.name for p in self.log_dir.glob("*.log") if p.stem not in self.services]
        more = f"\n(logs of stopped services in {self.log_dir}: {', '.join(stopped)})" if stopped else ""
        return f"{message}\n{tails}{more}"

    def wait_for(
        self, what: str, condition: Callable[[], Any], *, timeout: float, service: str | None = None
    ) -> Any:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            for name, running in self.services.items():
                if not running.running:
                    pytest.fail(self.explain(f"{name} exited while waiting for {what}"))
            try:
                result = condition()
            except (httpx.HTTPError, GraphQLError) as exc:
                last_error, result = exc, None
            if result:
                return result
            time.sleep(0.25)
        pytest.fail(
            self.explain(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error})")
        )

    def _answers(self, url: str) -> bool:
        try:
            return self.http.get(url, timeout=5).status_code < 500
        except httpx.HTTPError:
            return False


def dagster_pg_environment(url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables deploy/dagster.yaml reads, for the database at `url`."""
    parsed = sa.make_url(url)
    return {
        "DAGSTER_PG_HOST": parsed.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(parsed.port or 5432),
        "DAGSTER_PG_USER": parsed.username or "postgres",
        "DAGSTER_PG_PASSWORD": parsed.password or "",
        "DAGSTER_PG_DB": parsed.database or "",
    }


def clean_environment() -> dict[str, str]:
    """This process's environment without any Dagster, GenFeed or fal setting a developer may have."""
    prefixes = ("DAGSTER_", "GENFEED_", "FAL_")
    return {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}


def fmt_time(timestamp: float | None) -> str:
    return "-" if timestamp is None else datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M:%S.%f")[:-3]
