"""Faults: ``srlab mos serve`` killed with SIGKILL mid-study loses no acknowledged rating, and the rater
resumes after a restart with the same cookie."""

from __future__ import annotations

import os
import signal
import threading

import pytest

pytest.importorskip("fastapi", reason="the MOS app's libraries are the extra srlab[mos]")
httpx = pytest.importorskip("httpx")

from mos_fixtures import db_url, make_study  # noqa: E402, F401 - db_url is a fixture
from mos_server import free_port, serve_subprocess, wait_until_up  # noqa: E402

from srlab.mos import db  # noqa: E402


def submit_until_refused(client: httpx.Client, csrf: str, acknowledged: list[str], stop: threading.Event) -> None:
    """Rate trial after trial; a trial counts as acknowledged only when its 201 arrived."""
    while not stop.is_set():
        try:
            trial = client.get("/api/next").json()
            if trial["done"]:
                return
            response = client.post("/api/ratings", json={"trial": trial["trial"], "score": 3},
                                   headers={"X-CSRF-Token": csrf})
        except httpx.TransportError:  # the server is gone
            return
        if response.status_code == 201:
            acknowledged.append(trial["trial"])


@pytest.mark.slow  # two server starts in subprocesses: well over 10 s
def test_sigkill_loses_no_acknowledged_rating(tmp_path, db_url):  # noqa: F811
    study_dir = make_study(tmp_path, "acr", repeats=25)  # 100 trials
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve_subprocess(study_dir, port, db_url)
    try:
        wait_until_up(url, process=server)
        client = httpx.Client(base_url=url, timeout=10)
        csrf = client.post("/api/session", json={"consent": True}).json()["csrf"]
        acknowledged: list[str] = []
        stop = threading.Event()
        worker = threading.Thread(target=submit_until_refused, args=(client, csrf, acknowledged, stop))
        worker.start()
        while len(acknowledged) < 20 and worker.is_alive():
            worker.join(timeout=0.01)
        os.kill(server.pid, signal.SIGKILL)  # mid-study, while ratings are being submitted
        server.wait()
        stop.set()
        worker.join()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    _, stored = db.load_records(study_dir, db_url)
    stored_ids = [r.trial.id for r in stored]
    assert 20 <= len(acknowledged) < 100
    assert set(acknowledged) <= set(stored_ids)
    assert len(stored_ids) - len(acknowledged) <= 1  # at most the one in flight when the kill came
    assert len(set(stored_ids)) == len(stored_ids)

    restarted = serve_subprocess(study_dir, port, db_url)
    try:
        wait_until_up(url, process=restarted)
        client = httpx.Client(base_url=url, cookies=client.cookies, timeout=10)
        assert client.get("/api/progress").json()["rated"] == len(stored_ids)  # the same session resumes
        submit_until_refused(client, csrf, acknowledged, threading.Event())
    finally:
        restarted.send_signal(signal.SIGINT)
        restarted.wait(timeout=30)
    _, final = db.load_records(study_dir, db_url)
    assert set(stored_ids) <= {r.trial.id for r in final}
    assert len(final) == 100 and len({r.trial.id for r in final}) == 100
