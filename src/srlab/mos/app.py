"""``srlab mos serve``: the rating web app (FastAPI on uvicorn) over a study folder and its database.

The rater's page (``static/``) talks to a small JSON API (README, "MOS studies"):

- ``POST /api/session`` ``{"consent": true}``: starts a rater session (a cookie) and returns its CSRF
  token; with a valid session cookie it returns that session instead (resume). ``GET /api/session``:
  the current session, or 401.
- ``GET /api/next``: the rater's next unrated trial in their own order, with image URLs that name
  neither the method nor the file, or ``{"done": true}``.
- ``GET /api/trials/{id}/images/{slot}``: one image of one of the rater's trials (slot ``image``,
  ``reference``, ``left``, ``right``).
- ``POST /api/ratings`` ``{"trial": id, "score": 1-5}`` (acr, dcr) or ``{"trial": id, "choice":
  "left"|"right"}`` (pair), header ``X-CSRF-Token``: stores the rating; a resubmission returns the
  stored one (``"new": false``) and never adds a row.
- ``GET /api/progress``: the rater's counts.
- ``GET /api/admin/progress``, ``GET /api/admin/export`` with ``Authorization: Bearer <token>`` (the
  token ``serve`` prints): every rater's counts; the study's trials and every rating. The page
  ``/admin`` shows them (the token is typed in, kept in the page's memory only).

Security: the session cookie is HttpOnly and SameSite=Strict, and every POST must be JSON (a
cross-site form cannot send it without a CORS preflight, which this app never allows) and carry the
session's CSRF token in a header; a browser's Origin header, when sent, must be the app's own. A rating is only ever stored for the cookie's rater and a trial
assigned to them. Image URLs carry a trial id and a slot, never a path; the files come from
``study.json``, which is checked to stay inside the study folder. Bodies over 4 KiB are refused (413).
"""

from __future__ import annotations

import hmac
import secrets
import socket
from dataclasses import asdict
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine

from srlab.errors import SrlabError
from srlab.mos import db
from srlab.mos.db import Assignment, Rater
from srlab.mos.study import Study, StudyTrial, load_study

STATIC = Path(__file__).with_name("static")
COOKIE = "srlab_mos_session"
MAX_BODY_BYTES = 4096
SLOTS = ("image", "reference", "left", "right")
_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'self'; img-src 'self'; frame-ancestors 'none'"}


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    consent: Literal[True]


class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    trial: str = Field(min_length=1, max_length=32)
    score: int | None = Field(default=None, ge=1, le=5)
    choice: Literal["left", "right"] | None = None


def create_app(study_dir: str | Path, db_url: str | None = None, *, admin_token: str | None = None) -> FastAPI:
    """The app over ``study_dir``; the database (default: SQLite in the study) is migrated on creation."""
    study = load_study(study_dir)
    engine = db.open_database(db_url or db.default_url(study_dir))
    app = FastAPI(title="srlab MOS study", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.study, app.state.engine = study, engine
    app.state.admin_token = admin_token or secrets.token_urlsafe(24)
    app.add_middleware(_BodyLimit)
    app.exception_handler(RequestValidationError)(_validation_error)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _routes(app, study, engine)
    return app


class _BodyLimit:
    """Refuse a request body over MAX_BODY_BYTES (413), or a body without a Content-Length (411), before
    reading it; uvicorn's HTTP parser holds the body to its declared length."""

    def __init__(self, app) -> None:  # noqa: ANN001 - an ASGI app
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 - the ASGI interface
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            length = dict(scope["headers"]).get(b"content-length")
            problem = None
            if length is None or not length.isdigit():
                problem = (411, "a request body needs a Content-Length")
            elif int(length) > MAX_BODY_BYTES:
                problem = (413, f"the request body is over {MAX_BODY_BYTES} bytes")
            if problem is not None:
                response = JSONResponse({"detail": problem[1]}, status_code=problem[0], headers=_HEADERS)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": _one_line(error.errors())}, status_code=422, headers=_HEADERS)


def _one_line(errors) -> str:  # noqa: ANN001 - pydantic's list of error dicts
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in errors)


def _json(data: dict, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={**_HEADERS, "Cache-Control": "no-store"})


async def _json_body(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HTTPException(415, "send the body as JSON (Content-Type: application/json)")
    return await request.body()


def _parse(model: type[BaseModel], body: bytes) -> BaseModel:
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        raise HTTPException(422, _one_line(e.errors())) from None


def _routes(app: FastAPI, study: Study, engine: Engine) -> None:
    def current_rater(request: Request) -> Rater:
        rater = db.rater_by_secret(engine, request.cookies.get(COOKIE))
        if rater is None:
            raise HTTPException(401, "no rater session: start one (POST /api/session with consent)")
        return rater

    def checked_csrf(request: Request, rater: Rater = Depends(current_rater),
                     token: str | None = Header(None, alias="X-CSRF-Token")) -> Rater:
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            raise HTTPException(403, f"cross-origin request from {origin} refused")
        if token is None or not hmac.compare_digest(token, rater.csrf):
            raise HTTPException(403, "missing or wrong X-CSRF-Token header (it comes with the session)")
        return rater

    def admin(authorization: str | None = Header(None)) -> None:
        expected = f"Bearer {app.state.admin_token}"
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected.encode()):
            raise HTTPException(401, "admin endpoints need 'Authorization: Bearer <token>' (serve prints the token)")

    def session_json(rater: Rater) -> dict:
        done, total = db.progress(engine, rater.id)
        return {"rater": rater.id, "csrf": rater.csrf, "design": study.design, "done": done, "total": total}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=_HEADERS)

    @app.get("/admin", include_in_schema=False)
    def admin_page() -> FileResponse:
        return FileResponse(STATIC / "admin.html", headers=_HEADERS)

    @app.get("/api/health")
    def health() -> JSONResponse:
        return _json({"ok": True, "design": study.design, "trials": len(study.trials)})

    @app.get("/api/session")
    def get_session(rater: Rater = Depends(current_rater)) -> JSONResponse:
        return _json(session_json(rater))

    @app.post("/api/session")
    def start_session(request: Request, body: bytes = Depends(_json_body)) -> JSONResponse:
        _parse(SessionIn, body)
        rater = db.rater_by_secret(engine, request.cookies.get(COOKIE))
        if rater is not None:  # a reload of the consent page: resume, never a second rater
            return _json(session_json(rater))
        rater, secret = db.new_rater(engine, study)
        response = _json(session_json(rater), 201)
        response.set_cookie(COOKIE, secret, httponly=True, samesite="strict", path="/", max_age=90 * 24 * 3600,
                            secure=request.url.scheme == "https")
        return response

    @app.get("/api/next")
    def next_trial(rater: Rater = Depends(current_rater)) -> JSONResponse:
        done, total = db.progress(engine, rater.id)
        found = db.next_assignment(engine, rater.id)
        if found is None:
            return _json({"done": True, "rated": done, "total": total})
        slots = ("left", "right") if study.design == "pair" else ("image", "reference") if study.design == "dcr" else ("image",)
        images = {slot: f"/api/trials/{found.trial_id}/images/{slot}" for slot in slots}
        return _json({"done": False, "trial": found.trial_id, "design": study.design, "position": done + 1,
                      "rated": done, "total": total, "images": images})

    @app.get("/api/trials/{trial_id}/images/{slot}")
    def trial_image(trial_id: str, slot: str, rater: Rater = Depends(current_rater)) -> FileResponse:
        trial, found = _assigned(study, engine, rater, trial_id)
        name = _file_of(study, trial, found, slot)
        path = (study.folder / name).resolve()
        if not path.is_relative_to(study.folder.resolve()) or not path.is_file():
            raise HTTPException(404, "no such image")
        return FileResponse(path, headers={**_HEADERS, "Cache-Control": "private, max-age=3600"})

    @app.post("/api/ratings")
    def rate(rater: Rater = Depends(checked_csrf), body: bytes = Depends(_json_body)) -> JSONResponse:
        given = _parse(RatingIn, body)
        trial, found = _assigned(study, engine, rater, given.trial)
        score, winner = _answer(study, trial, found, given)
        row, new = db.store_rating(engine, rater.id, given.trial, score, winner)
        done, total = db.progress(engine, rater.id)
        return _json({"trial": given.trial, "new": new, "rated": done, "total": total}, 201 if new else 200)

    @app.get("/api/progress")
    def rater_progress(rater: Rater = Depends(current_rater)) -> JSONResponse:
        done, total = db.progress(engine, rater.id)
        return _json({"rated": done, "total": total})

    @app.get("/api/admin/progress", dependencies=[Depends(admin)])
    def admin_progress() -> JSONResponse:
        raters = db.all_progress(engine)
        return _json({"raters": raters, "ratings": sum(r["done"] for r in raters),
                      "complete": sum(r["done"] == r["total"] for r in raters)})

    @app.get("/api/admin/export", dependencies=[Depends(admin)])
    def admin_export() -> JSONResponse:
        rows = db.all_ratings(engine)
        return _json({
            "design": study.design, "methods": list(study.methods), "images": list(study.images),
            "trials": [asdict(t.trial) for t in study.trials],
            "ratings": [{"rater": r.rater_id, "trial": r.trial_id, "score": r.score, "winner": r.winner,
                         "time": r.created_at} for r in rows],
        })

    @app.exception_handler(HTTPException)
    def http_error(_request: Request, error: HTTPException) -> Response:
        return _json({"detail": error.detail}, error.status_code)


def _assigned(study: Study, engine: Engine, rater: Rater, trial_id: str) -> tuple[StudyTrial, Assignment]:
    trial = study.trial(trial_id)
    if trial is None:
        raise HTTPException(404, f"no trial {trial_id!r} in this study")
    found = db.assignment(engine, rater.id, trial_id)
    if found is None:
        raise HTTPException(403, f"trial {trial_id!r} is not assigned to this rater")
    return trial, found


def _file_of(study: Study, trial: StudyTrial, found: Assignment, slot: str) -> str:
    if study.design == "pair" and slot in ("left", "right"):
        first_is_left = not found.flip
        return trial.first if (slot == "left") == first_is_left else trial.second
    if study.design != "pair" and slot == "image":
        return trial.first
    if study.design == "dcr" and slot == "reference":
        return trial.reference
    raise HTTPException(404, f"no image {slot!r} in a {study.design} trial (slots: {', '.join(SLOTS)})")


def _answer(study: Study, trial: StudyTrial, found: Assignment, given: RatingIn) -> tuple[int | None, str | None]:
    """(score, winner) from the request; the winner is a method name, mapped back through the rater's flip."""
    if study.design == "pair":
        if given.choice is None or given.score is not None:
            raise HTTPException(422, "a pair trial takes {\"choice\": \"left\" or \"right\"} and no score")
        left, right = (trial.trial.other, trial.trial.method) if found.flip else (trial.trial.method, trial.trial.other)
        return None, left if given.choice == "left" else right
    if given.score is None or given.choice is not None:
        raise HTTPException(422, f"a {study.design} trial takes {{\"score\": 1-5}} and no choice")
    return given.score, None


def serve(study_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8000, db_url: str | None = None,
          admin_token: str | None = None) -> None:
    """Run the app with uvicorn until interrupted; prints the rater URL and the admin token first."""
    app = create_app(study_dir, db_url, admin_token=admin_token)
    listening = _listen(host, port)
    print(f"MOS study '{study_dir}' ({app.state.study.design}, {len(app.state.study.trials)} trials)")
    print(f"raters: http://{host}:{port}/")
    print(f"admin token: {app.state.admin_token}  (Authorization: Bearer <token> on /api/admin/progress, /api/admin/export)",
          flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listening])


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port is a one-line error before anything is printed."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
    except OSError as e:
        raise SrlabError(f"cannot listen on --host {host} --port {port} ({e.strerror or e}): "
                         "choose another port, or stop what uses it") from None
    listening.listen(2048)
    return listening
