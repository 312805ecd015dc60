"""Real node processes for browser and federation tests.

``LiveNode`` runs ``vbg-node serve`` in a subprocess on a loopback address, with its
own database and settings, and waits until ``/healthz`` answers. Several can run
side by side (one per node of a multi-node test).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from tests.conftest import TEST_SECRET


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate a child process still running (SIGTERM, then SIGKILL after 10 s)."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class LiveNode:
    def __init__(
        self,
        database_url: str,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        base_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.base_url = base_url or self.url
        self.data_dir = data_dir
        self.log_path = data_dir / "node.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "VBG_BASE_URL": self.base_url,
            "VBG_HOST": host,
            "VBG_PORT": str(self.port),
            "VBG_DATA_DIR": str(data_dir),
            "VBG_SECRET_KEY": TEST_SECRET,
            "VBG_DEV_ALLOW_PRIVATE_PEERS": "1",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> LiveNode:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "serve"], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"node exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"node did not start in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def __enter__(self) -> LiveNode:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
