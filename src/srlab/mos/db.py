"""The MOS app's database: raters, their trial assignments and their ratings (SQLAlchemy 2, Alembic).

One SQLite file in the study folder by default (WAL journal, ``synchronous=FULL`` so an acknowledged
rating survives a kill or a power cut, a busy timeout so concurrent writers wait instead of failing), or
any SQLAlchemy URL (``postgresql+psycopg://user@host/db``) for many raters or several app instances.
The schema is made and upgraded by the Alembic migrations shipped in :mod:`srlab.mos.migrations`, run
programmatically (``upgrade head``) whenever the app opens the database.

A rater gets every trial of the study once, in an order drawn for them, with a left/right flip for pair
trials. ``ratings`` has one row per (rater, trial) at most: a resubmission (a reload, a double click)
finds the stored row instead of adding one.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Boolean, Engine, Float, ForeignKey, Integer, String, UniqueConstraint, create_engine, event, func, make_url, select,
)
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from srlab.errors import SrlabError
from srlab.mos.records import Rating, Trial
from srlab.mos.study import Study, load_study

DB_FILE = "ratings.sqlite"
SQLITE_BUSY_TIMEOUT_S = 30
MIGRATION_LOCK = 0x5121AB05  # PostgreSQL advisory lock id of srlab.mos migrations (any fixed 64-bit number)
# Alembic's record of the schema's revision, named for the app (not the default `alembic_version`, which
# Optuna's storage in the same database would take for its own: see migrations/env.py).
VERSION_TABLE = "srlab_mos_alembic_version"


class Base(DeclarativeBase):
    pass


class Rater(Base):
    """A rater's session: the cookie holds a secret whose SHA-256 is stored; ``csrf`` is echoed in a header."""

    __tablename__ = "raters"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    csrf: Mapped[str] = mapped_column(String(64))
    consented_at: Mapped[float] = mapped_column(Float)


class Assignment(Base):
    """The ``position``-th trial shown to a rater; ``flip`` swaps left and right in pair designs."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("rater_id", "trial_id", name="uq_assignment_rater_trial"),)
    rater_id: Mapped[str] = mapped_column(ForeignKey("raters.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(String(32))
    flip: Mapped[bool] = mapped_column(Boolean)


class RatingRow(Base):
    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("rater_id", "trial_id", name="uq_rating_rater_trial"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rater_id: Mapped[str] = mapped_column(ForeignKey("raters.id"))
    trial_id: Mapped[str] = mapped_column(String(32))
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    winner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


def default_url(study_dir: str | Path) -> str:
    return f"sqlite:///{Path(study_dir).resolve() / DB_FILE}"


def open_database(url: str) -> Engine:
    """An engine on ``url`` with the schema at the newest migration. ``postgresql://`` means psycopg 3,
    the driver of the extra ``srlab[mos]`` (SQLAlchemy's default for it is psycopg2)."""
    try:
        parsed = make_url(url)
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite")
    except (ArgumentError, ImportError) as e:
        raise SrlabError(f"--db {url!r}: not a usable database URL ({e}); e.g. postgresql+psycopg://user@host/db") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        upgrade(engine)
    except OperationalError as e:  # no server there, a wrong password, an unwritable SQLite file
        engine.dispose()
        reason = " ".join(str(e.orig).split())
        raise SrlabError(f"cannot open the database {engine.url.render_as_string(hide_password=True)!r} ({reason}): "
                         "check --db (server running? user, password, database name?)") from None
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - SQLAlchemy's event signature
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000:d}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def upgrade(engine: Engine) -> None:
    """Alembic ``upgrade head`` on ``engine`` with the migrations shipped in the package."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Several app instances starting at once: one migrates, the others wait here, then find it done.
            connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_rater(engine: Engine, study: Study) -> tuple[Rater, str]:
    """A rater with every trial assigned in a fresh random order; returns it and its cookie secret."""
    rng = random.SystemRandom()
    secret = secrets.token_urlsafe(32)
    rater = Rater(id=secrets.token_hex(16), secret_sha256=_sha256(secret), csrf=secrets.token_urlsafe(32),
                  consented_at=time.time())
    order = [t.trial.id for t in study.trials]
    rng.shuffle(order)
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add(rater)
        session.flush()  # the rater row before its assignments (foreign keys)
        session.add_all(Assignment(rater_id=rater.id, position=k, trial_id=trial_id,
                                   flip=study.design == "pair" and rng.random() < 0.5)
                        for k, trial_id in enumerate(order))
    return rater, secret


def rater_by_secret(engine: Engine, secret: str | None) -> Rater | None:
    if not secret:
        return None
    with Session(engine, expire_on_commit=False) as session:
        return session.scalars(select(Rater).where(Rater.secret_sha256 == _sha256(secret))).first()


def next_assignment(engine: Engine, rater_id: str) -> Assignment | None:
    """The rater's first assignment in their order that has no rating yet (resume where they left off)."""
    rated = select(RatingRow.trial_id).where(RatingRow.rater_id == rater_id)
    query = (select(Assignment).where(Assignment.rater_id == rater_id, Assignment.trial_id.not_in(rated))
             .order_by(Assignment.position).limit(1))
    with Session(engine, expire_on_commit=False) as session:
        return session.scalars(query).first()


def assignment(engine: Engine, rater_id: str, trial_id: str) -> Assignment | None:
    """The rater's assignment of ``trial_id``; None when the trial is not theirs (or does not exist)."""
    query = select(Assignment).where(Assignment.rater_id == rater_id, Assignment.trial_id == trial_id)
    with Session(engine, expire_on_commit=False) as session:
        return session.scalars(query).first()


def store_rating(engine: Engine, rater_id: str, trial_id: str, score: int | None, winner: str | None) -> tuple[RatingRow, bool]:
    """Insert the rating, or find the one stored before for (rater, trial); returns it and whether it is new.
    The row is committed (and on SQLite synced) before this returns: then the rating is acknowledged."""
    row = RatingRow(rater_id=rater_id, trial_id=trial_id, score=score, winner=winner, created_at=time.time())
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            session.add(row)
        return row, True
    except IntegrityError:  # the unique (rater, trial): a resubmission, keep the first answer
        with Session(engine, expire_on_commit=False) as session:
            stored = session.scalars(select(RatingRow)
                                     .where(RatingRow.rater_id == rater_id, RatingRow.trial_id == trial_id)).one()
        return stored, False


def progress(engine: Engine, rater_id: str) -> tuple[int, int]:
    """(trials rated, trials assigned) of one rater."""
    with Session(engine) as session:
        done = session.scalar(select(func.count()).select_from(RatingRow).where(RatingRow.rater_id == rater_id))
        total = session.scalar(select(func.count()).select_from(Assignment).where(Assignment.rater_id == rater_id))
    return int(done or 0), int(total or 0)


def all_progress(engine: Engine) -> list[dict]:
    """Every rater's id, start time and counts, oldest first (the admin's view)."""
    with Session(engine) as session:
        done = dict(session.execute(select(RatingRow.rater_id, func.count()).group_by(RatingRow.rater_id)).all())
        total = dict(session.execute(select(Assignment.rater_id, func.count()).group_by(Assignment.rater_id)).all())
        raters = session.execute(select(Rater.id, Rater.consented_at).order_by(Rater.consented_at)).all()
    return [{"rater": r, "started": t, "done": int(done.get(r, 0)), "total": int(total.get(r, 0))} for r, t in raters]


def all_ratings(engine: Engine) -> list[RatingRow]:
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(select(RatingRow).order_by(RatingRow.id)))


def to_records(study: Study, rows: list[RatingRow]) -> list[Rating]:
    """Rows as :class:`Rating` records; a row whose trial is not in the study (a study remade under a
    database) is an error that names the fix."""
    ratings = []
    for row in rows:
        found = study.trial(row.trial_id)
        if found is None:
            raise SrlabError(f"the database holds ratings of trial {row.trial_id!r}, which '{study.folder}' does not "
                             "have: the study was remade; report it with the database made for it (--db)")
        ratings.append(Rating(row.rater_id, found.trial, row.score, row.winner, row.created_at))
    return ratings


def load_records(study_dir: str | Path, db_url: str | None = None) -> tuple[list[Trial], list[Rating]]:
    """The study's trials and every stored rating, for :func:`srlab.mos.report.write_report`."""
    study = load_study(study_dir)
    url = db_url or default_url(study_dir)
    if url == default_url(study_dir) and not (Path(study_dir) / DB_FILE).exists():
        raise SrlabError(f"'{study_dir}' has no ratings yet ({DB_FILE} is missing): collect some with `srlab mos serve`")
    engine = open_database(url)
    try:
        return study.records(), to_records(study, all_ratings(engine))
    finally:
        engine.dispose()
