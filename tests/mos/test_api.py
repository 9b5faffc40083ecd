"""The JSON API (srlab.mos.app) through FastAPI's TestClient, on SQLite and (when set up) PostgreSQL."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="the MOS app's libraries are the extra srlab[mos]")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient  # noqa: E402
from mos_fixtures import db_url, make_study  # noqa: E402, F401 - db_url is a fixture
from sqlalchemy import delete  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from srlab.mos import db  # noqa: E402
from srlab.mos.app import COOKIE, MAX_BODY_BYTES, create_app  # noqa: E402

TOKEN = "admin-token-for-tests"


def client_for(study_dir, url):
    return TestClient(create_app(study_dir, url, admin_token=TOKEN), base_url="http://testserver")


def start(client) -> str:
    response = client.post("/api/session", json={"consent": True})
    assert response.status_code == 201, response.text
    return response.json()["csrf"]


def rate(client, csrf, trial, **answer):
    return client.post("/api/ratings", json={"trial": trial, **answer}, headers={"X-CSRF-Token": csrf})


@pytest.fixture
def acr(tmp_path, db_url):  # noqa: F811 - the fixture
    study_dir = make_study(tmp_path, "acr")
    with client_for(study_dir, db_url) as client:
        yield client


def test_a_rater_rates_every_trial_once_in_their_order(acr):
    csrf = start(acr)
    total = acr.get("/api/progress").json()["total"]
    assert total == 4  # 2 methods x 2 images
    seen = []
    while not (trial := acr.get("/api/next").json())["done"]:
        assert trial["images"] == {"image": f"/api/trials/{trial['trial']}/images/image"}
        image = acr.get(trial["images"]["image"])
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        assert rate(acr, csrf, trial["trial"], score=len(seen) % 5 + 1).status_code == 201
        seen.append(trial["trial"])
    assert len(set(seen)) == total
    export = acr.get("/api/admin/export", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert [(r["trial"], r["score"]) for r in export["ratings"]] == [(t, k % 5 + 1) for k, t in enumerate(seen)]


def test_a_resubmission_never_duplicates_a_rating(acr):
    csrf = start(acr)
    trial = acr.get("/api/next").json()["trial"]
    assert rate(acr, csrf, trial, score=4).status_code == 201
    again = rate(acr, csrf, trial, score=2)  # a reload or a double click: the first answer stays
    assert again.status_code == 200 and again.json()["new"] is False
    ratings = acr.get("/api/admin/export", headers={"Authorization": f"Bearer {TOKEN}"}).json()["ratings"]
    assert [(r["trial"], r["score"]) for r in ratings] == [(trial, 4)]


def test_a_reload_resumes_where_the_rater_left_off(acr):
    csrf = start(acr)
    first = acr.get("/api/next").json()["trial"]
    assert acr.get("/api/next").json()["trial"] == first  # reloading the page shows the same trial
    rate(acr, csrf, first, score=3)
    second = acr.get("/api/next").json()
    assert second["trial"] != first and second["position"] == 2
    resumed = acr.post("/api/session", json={"consent": True})  # consent page reloaded: same session
    assert resumed.status_code == 200 and resumed.json()["done"] == 1
    assert acr.get("/api/next").json()["trial"] == second["trial"]


def test_orders_are_drawn_per_rater(tmp_path, db_url):  # noqa: F811
    study_dir = make_study(tmp_path, "acr", repeats=3)  # 12 trials: two orders agree by chance with p = 1/12!
    orders = []
    with client_for(study_dir, db_url) as client:
        for _ in range(2):
            client.cookies.clear()
            csrf = start(client)
            order = []
            while not (trial := client.get("/api/next").json())["done"]:
                rate(client, csrf, trial["trial"], score=3)
                order.append(trial["trial"])
            orders.append(order)
    assert sorted(orders[0]) == sorted(orders[1]) and orders[0] != orders[1]


def test_pair_choices_map_back_through_the_flip(tmp_path, db_url):  # noqa: F811
    study_dir = make_study(tmp_path, "pair", repeats=4)
    study = json.loads((study_dir / "study.json").read_text())
    files = {t["id"]: t["files"] for t in study["trials"]}
    methods = {t["id"]: (t["method"], t["other"]) for t in study["trials"]}
    with client_for(study_dir, db_url) as client:
        csrf = start(client)
        expected = []
        while not (trial := client.get("/api/next").json())["done"]:
            assert set(trial["images"]) == {"left", "right"}
            left = client.get(trial["images"]["left"]).content
            first = (study_dir / files[trial["trial"]]["first"]).read_bytes()
            method, other = methods[trial["trial"]]
            expected.append(method if left == first else other)  # "left" is the image shown on the left
            assert rate(client, csrf, trial["trial"], choice="left").status_code == 201
        ratings = client.get("/api/admin/export", headers={"Authorization": f"Bearer {TOKEN}"}).json()["ratings"]
    assert [r["winner"] for r in ratings] == expected
    assert all(r["score"] is None for r in ratings)


@pytest.mark.parametrize("body, message", [
    ({"score": 6}, "less than or equal to 5"),
    ({"score": 0}, "greater than or equal to 1"),
    ({"score": "5"}, "valid integer"),
    ({"score": 4.5}, "valid integer"),
    ({"score": 3, "extra": 1}, "Extra inputs"),
    ({"choice": "left"}, "takes {\"score\": 1-5}"),
    ({}, "takes {\"score\": 1-5}"),
])
def test_invalid_ratings_are_refused_with_a_clear_422(acr, body, message):
    csrf = start(acr)
    trial = acr.get("/api/next").json()["trial"]
    response = rate(acr, csrf, trial, **body)
    assert response.status_code == 422 and message in response.json()["detail"]
    assert acr.get("/api/progress").json()["rated"] == 0


def test_unknown_and_unassigned_trials_are_refused(acr):
    csrf = start(acr)
    response = rate(acr, csrf, "t999", score=3)
    assert response.status_code == 404 and "no trial 't999'" in response.json()["detail"]
    trial = acr.get("/api/next").json()["trial"]
    engine = acr.app.state.engine
    with Session(engine) as session, session.begin():  # a trial the rater was never given
        session.execute(delete(db.Assignment).where(db.Assignment.trial_id == trial))
    response = rate(acr, csrf, trial, score=3)
    assert response.status_code == 403 and "not assigned" in response.json()["detail"]
    assert acr.get(f"/api/trials/{trial}/images/image").status_code == 403


def test_oversized_and_non_json_bodies_are_refused(acr):
    csrf = start(acr)
    trial = acr.get("/api/next").json()["trial"]
    big = acr.post("/api/ratings", content=b"{" + b" " * MAX_BODY_BYTES + b"}",
                   headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
    assert big.status_code == 413 and "over 4096 bytes" in big.json()["detail"]
    form = acr.post("/api/ratings", data={"trial": trial, "score": "3"}, headers={"X-CSRF-Token": csrf})
    assert form.status_code == 415 and "JSON" in form.json()["detail"]
    broken = acr.post("/api/ratings", content=b"{not json", headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
    assert broken.status_code == 422 and "JSON" in broken.json()["detail"]


def test_ratings_need_the_raters_own_session_and_csrf_token(acr):
    csrf = start(acr)
    trial = acr.get("/api/next").json()["trial"]
    assert rate(acr, "wrong-token", trial, score=3).status_code == 403
    no_header = acr.post("/api/ratings", json={"trial": trial, "score": 3})
    assert no_header.status_code == 403 and "X-CSRF-Token" in no_header.json()["detail"]
    cookie = acr.cookies.get(COOKIE)
    acr.cookies.clear()
    anonymous = rate(acr, csrf, trial, score=3)  # the token without the cookie is nobody's session
    assert anonymous.status_code == 401
    acr.cookies.set(COOKIE, "forged-" + cookie)
    assert rate(acr, csrf, trial, score=3).status_code == 401
    assert acr.get("/api/next").status_code == 401
    assert acr.get(f"/api/trials/{trial}/images/image").status_code == 401


def test_cross_origin_posts_are_refused(acr):
    csrf = start(acr)
    trial = acr.get("/api/next").json()["trial"]
    evil = acr.post("/api/ratings", json={"trial": trial, "score": 3},
                    headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    assert evil.status_code == 403 and "cross-origin request from http://evil.example refused" in evil.json()["detail"]
    same = acr.post("/api/ratings", json={"trial": trial, "score": 3},
                    headers={"X-CSRF-Token": csrf, "Origin": "http://testserver"})
    assert same.status_code == 201


def test_a_second_rater_cannot_use_the_first_raters_csrf_token(acr):
    first_csrf = start(acr)
    acr.cookies.clear()
    start(acr)
    trial = acr.get("/api/next").json()["trial"]
    assert rate(acr, first_csrf, trial, score=3).status_code == 403


def test_the_session_cookie_is_httponly_and_samesite_strict(acr):
    response = acr.post("/api/session", json={"consent": True})
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_consent_is_required(acr):
    refused = acr.post("/api/session", json={"consent": False})
    assert refused.status_code == 422 and "consent" in refused.json()["detail"]
    assert COOKIE not in acr.cookies


def test_admin_endpoints_need_the_token(acr):
    for path in ("/api/admin/progress", "/api/admin/export"):
        assert acr.get(path).status_code == 401
        assert acr.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert acr.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    start(acr)  # a rater's session is not an admin's
    assert acr.get("/api/admin/export").status_code == 401


def test_admin_progress_counts_every_rater(acr):
    csrf = start(acr)
    rate(acr, csrf, acr.get("/api/next").json()["trial"], score=5)
    acr.cookies.clear()
    start(acr)
    progress = acr.get("/api/admin/progress", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert sorted((r["done"], r["total"]) for r in progress["raters"]) == [(0, 4), (1, 4)]
    assert progress["ratings"] == 1


@pytest.mark.parametrize("path", [
    "/api/trials/..%2F..%2Fstudy.json/images/image", "/api/trials/t001/images/..%2F..%2Fstudy.json",
    "/api/trials/t001/images/reference", "/static/..%2F..%2Fdb.py", "/static/../study.py",
])
def test_image_urls_cannot_leave_the_study(acr, path):
    start(acr)
    response = acr.get(path)
    assert response.status_code == 404, (path, response.status_code)


def test_the_rater_never_sees_method_names(acr):
    start(acr)
    trial = acr.get("/api/next").json()
    text = json.dumps(trial) + acr.get("/api/session").text + acr.get("/api/progress").text
    assert "alpha" not in text and "beta" not in text


def test_records_for_the_report(tmp_path, db_url):  # noqa: F811
    study_dir = make_study(tmp_path, "acr")
    with client_for(study_dir, db_url) as client:
        csrf = start(client)
        trial = client.get("/api/next").json()["trial"]
        rate(client, csrf, trial, score=2)
    trials, ratings = db.load_records(study_dir, db_url)
    assert len(trials) == 4
    assert [(r.trial.id, r.score, r.winner) for r in ratings] == [(trial, 2, None)]
    assert ratings[0].trial.method in ("alpha", "beta")


def test_serve_on_a_taken_port_is_a_one_line_error(tmp_path, capsys):
    import socket

    from srlab.cli.main import main

    study_dir = make_study(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["mos", "serve", str(study_dir), "--port", str(port)]) == 2
    assert f"cannot listen on --host 127.0.0.1 --port {port}" in capsys.readouterr().err
