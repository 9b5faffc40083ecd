"""Load on the MOS app: many simulated raters submitting at once against ``srlab mos serve`` on loopback.

Usage: python bench/mos_load.py [--raters 50] [--seconds 20] [--db URL] [--resubmit 0.1]

Makes a small study in a temporary folder, serves it in a subprocess (the real command, uvicorn, the
default SQLite file or --db), and runs ``--raters`` raters concurrently (asyncio, one httpx client and so
one session cookie each) for ``--seconds``: each takes its next trial, submits a score, and with
probability ``--resubmit`` submits the same answer again (a double click). Then it counts the ratings
in the database: every acknowledged rating (201) must be there exactly once, with its score, and nothing else (no lost, no
duplicated rating); it prints the request latencies (p50, p95, p99) with the CPU. Exit status 1 when the
counts disagree. The load client and the server share the machine's cores: on a busy machine read the
latencies as an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from srlab.machine import cpu_model
from srlab.mos.create import create_study
from srlab.mos.db import load_records

SRC = Path(__file__).resolve().parents[1] / "src"


def make_study(root: Path) -> Path:
    rng = np.random.default_rng(0)
    folders = {}
    for method in ("m1", "m2", "m3"):
        folders[method] = root / method
        folders[method].mkdir(parents=True)
        for k in range(4):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folders[method] / f"img{k}.png")
    create_study(root / "study", folders, design="acr", repeats=20)  # 240 trials per rater
    return root / "study"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(study_dir: Path, port: int, db_url: str | None) -> subprocess.Popen:
    command = [sys.executable, "-m", "srlab", "mos", "serve", str(study_dir), "--port", str(port)]
    if db_url:
        command += ["--db", db_url]
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


async def wait_until_up(url: str, server: subprocess.Popen) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(1200):
            if server.poll() is not None:
                raise SystemExit(f"the server exited with status {server.returncode}")
            try:
                if (await client.get(f"{url}/api/health")).status_code == 200:
                    return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


async def rater(url: str, until: float, resubmit: float, rng: random.Random, acknowledged: list, latencies: list,
                errors: Counter) -> None:
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        session = (await client.post("/api/session", json={"consent": True})).json()
        csrf = session["csrf"]
        while time.monotonic() < until:
            trial = (await client.get("/api/next")).json()
            if trial["done"]:
                return
            body, headers = {"trial": trial["trial"], "score": rng.randint(1, 5)}, {"X-CSRF-Token": csrf}
            for attempt in range(2 if rng.random() < resubmit else 1):
                start = time.perf_counter()
                response = await client.post("/api/ratings", json=body, headers=headers)
                latencies.append(time.perf_counter() - start)
                if response.status_code == 201:
                    acknowledged.append((session["rater"], trial["trial"], body["score"]))
                elif response.status_code != 200 or attempt == 0:  # 200 only for the resubmission
                    errors[response.status_code] += 1


async def load(url: str, raters: int, seconds: float, resubmit: float) -> tuple[list, list, Counter, float]:
    acknowledged, latencies, errors = [], [], Counter()
    start = time.monotonic()
    await asyncio.gather(*(rater(url, start + seconds, resubmit, random.Random(k), acknowledged, latencies, errors)
                           for k in range(raters)))
    return acknowledged, latencies, errors, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raters", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--db", default=None, help="a database URL (default: SQLite in the study folder)")
    parser.add_argument("--resubmit", type=float, default=0.1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        study_dir = make_study(Path(tmp))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = serve(study_dir, port, args.db)
        try:
            asyncio.run(wait_until_up(url, server))
            acknowledged, latencies, errors, elapsed = asyncio.run(load(url, args.raters, args.seconds, args.resubmit))
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
        _, stored = load_records(study_dir, args.db)
    ours = {rater for rater, _, _ in acknowledged}  # a --db may hold other studies' raters too
    stored = [(r.rater, r.trial.id, r.score) for r in stored if r.rater in ours]
    duplicated = sum(n - 1 for n in Counter((rater, trial) for rater, trial, _ in stored).values())
    ms = np.asarray(latencies) * 1000
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores (server and {args.raters} raters share them)")
    print(f"database: {args.db or 'SQLite (WAL) in the study folder'}")
    print(f"{args.raters} raters for {elapsed:.1f} s: {len(latencies)} rating requests "
          f"({len(latencies) / elapsed:.0f}/s), {len(acknowledged)} acknowledged")
    print(f"rating request latency: p50 {np.percentile(ms, 50):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, "
          f"p99 {np.percentile(ms, 99):.1f} ms")
    print(f"in the database: {len(stored)} ratings of these raters, {duplicated} duplicated; unexpected statuses: {dict(errors)}")
    ok = sorted(stored) == sorted(acknowledged) and duplicated == 0 and not errors
    print("no lost or duplicated rating" if ok else "MISMATCH: ratings lost, duplicated or refused")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
