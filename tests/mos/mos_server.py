"""A MOS app served for real on loopback: uvicorn in a thread (browser tests), or ``srlab mos serve`` in a
subprocess (the kill test)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from srlab.mos.app import create_app

SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, timeout_s: float = 60.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: {process.stdout.read()}")
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up in {timeout_s} s")


@contextmanager
def served_in_thread(study_dir, db_url=None, admin_token="token"):
    """Yields the base URL of the app served by uvicorn in a daemon thread; stops it after."""
    port = free_port()
    app = create_app(study_dir, db_url, admin_token=admin_token)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
        yield url, app
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def serve_subprocess(study_dir, port: int, db_url=None, admin_token="token") -> subprocess.Popen:
    """``srlab mos serve`` as its own process (so it can be killed with SIGKILL)."""
    command = [sys.executable, "-m", "srlab", "mos", "serve", str(study_dir), "--port", str(port)]
    if db_url:
        command += ["--db", db_url]
    env = {**os.environ, "PYTHONPATH": str(SRC), "SRLAB_MOS_ADMIN_TOKEN": admin_token}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
