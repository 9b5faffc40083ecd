"""The database layer (srlab.mos.db): migrations, SQLite settings, records for the report; ``srlab mos report``."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("sqlalchemy", reason="the MOS app's libraries are the extra srlab[mos]")
pytest.importorskip("alembic", reason="the MOS app's libraries are the extra srlab[mos]")

from alembic.autogenerate import compare_metadata  # noqa: E402
from alembic.migration import MigrationContext  # noqa: E402
from mos_fixtures import db_url, make_study  # noqa: E402, F401 - db_url is a fixture
from sqlalchemy import inspect  # noqa: E402

from srlab.cli.main import main  # noqa: E402
from srlab.errors import SrlabError  # noqa: E402
from srlab.mos import db  # noqa: E402
from srlab.mos.study import load_study  # noqa: E402


def test_the_migrations_make_exactly_the_models_schema(tmp_path, db_url):  # noqa: F811
    engine = db.open_database(db_url or f"sqlite:///{tmp_path / 'x.sqlite'}")
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": db.VERSION_TABLE})
        diff = compare_metadata(context, db.Base.metadata)
        version = context.get_current_revision()
    assert diff == [] and version == "0001"
    db.upgrade(engine)  # opening it again (a restart) is a no-op
    tables = set(inspect(engine).get_table_names())
    assert {"raters", "assignments", "ratings", db.VERSION_TABLE} <= tables and "alembic_version" not in tables
    engine.dispose()


def test_the_app_and_an_optuna_study_share_one_database(tmp_path, db_url):  # noqa: F811
    optuna = pytest.importorskip("optuna")
    url = db_url or f"sqlite:///{tmp_path / 'x.sqlite'}"
    db.open_database(url).dispose()  # the app's schema at its revision
    study = optuna.create_study(storage=url, study_name="shared")  # Optuna's own alembic_version beside it
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    engine = db.open_database(url)  # and the app opens it again
    assert len(optuna.load_study(study_name="shared", storage=url).trials) == 1
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    engine = db.open_database(f"sqlite:///{tmp_path / 'x.sqlite'}")
    with engine.connect() as connection:
        cursor = connection.connection.cursor()
        settings = [cursor.execute(f"PRAGMA {name}").fetchone()[0] for name in ("journal_mode", "busy_timeout", "synchronous")]
    assert settings == ["wal", db.SQLITE_BUSY_TIMEOUT_S * 1000, 2]  # synchronous 2 = FULL
    engine.dispose()


def test_a_resubmission_keeps_the_first_answer(tmp_path, db_url):  # noqa: F811
    study_dir = make_study(tmp_path)
    engine = db.open_database(db_url or db.default_url(study_dir))
    rater, _ = db.new_rater(engine, load_study(study_dir))
    first, new = db.store_rating(engine, rater.id, "t001", 2, None)
    again, new_again = db.store_rating(engine, rater.id, "t001", 5, None)
    assert (new, new_again) == (True, False) and again.id == first.id and again.score == 2
    assert len(db.all_ratings(engine)) == 1
    engine.dispose()


def test_a_bad_database_url_is_a_one_line_error(tmp_path):
    with pytest.raises(SrlabError, match="--db 'nosuchdb://x': not a usable database URL"):
        db.open_database("nosuchdb://x")


def test_records_of_a_study_without_ratings(tmp_path):
    study_dir = make_study(tmp_path)
    with pytest.raises(SrlabError, match="has no ratings yet .ratings.sqlite is missing.: collect some with `srlab mos serve`"):
        db.load_records(study_dir)


def test_ratings_of_a_remade_study_are_refused(tmp_path):
    study_dir = make_study(tmp_path)
    engine = db.open_database(db.default_url(study_dir))
    rater, _ = db.new_rater(engine, load_study(study_dir))
    db.store_rating(engine, rater.id, "t001", 2, None)
    engine.dispose()
    data = json.loads((study_dir / "study.json").read_text())
    data["trials"] = [t for t in data["trials"] if t["id"] != "t001"]
    (study_dir / "study.json").write_text(json.dumps(data))
    with pytest.raises(SrlabError, match="holds ratings of trial 't001', which .* does not have: the study was remade"):
        db.load_records(study_dir)


def test_cli_report_needs_an_output(tmp_path, capsys):
    study_dir = make_study(tmp_path)
    assert main(["mos", "report", str(study_dir)]) == 2
    assert "give at least one of --json OUT, --html OUT, --csv OUT" in capsys.readouterr().err


def test_cli_report_writes_the_mos_of_each_method(tmp_path, capsys):
    study_dir = make_study(tmp_path)
    engine = db.open_database(db.default_url(study_dir))
    study = load_study(study_dir)
    for score in (2, 4):
        rater, _ = db.new_rater(engine, study)
        for t in study.trials:
            db.store_rating(engine, rater.id, t.trial.id, score if t.trial.method == "alpha" else 3, None)
    engine.dispose()
    out = tmp_path / "report.json"
    assert main(["mos", "report", str(study_dir), "--json", str(out)]) == 0
    methods = {m["name"]: m for m in json.loads(out.read_text())["methods"]}
    assert methods["alpha"]["mos"] == pytest.approx(3.0) and methods["beta"]["mos"] == pytest.approx(3.0)
    assert methods["alpha"]["n"] == 4


def test_instances_starting_together_migrate_once(db_url):  # noqa: F811
    if db_url is None:
        pytest.skip("one SQLite file serves one app instance; several instances are a PostgreSQL setup")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        engines = list(pool.map(db.open_database, [db_url] * 4))
    with engines[0].connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": db.VERSION_TABLE})
        assert context.get_current_revision() == "0001"
    for engine in engines:
        engine.dispose()


def test_an_unreachable_database_is_a_one_line_error(tmp_path, capsys):
    study_dir = make_study(tmp_path)
    with pytest.raises(SrlabError, match=r"cannot open the database 'postgresql\+psycopg://x:\*\*\*@127.0.0.1:1/db' "
                                         r"\(connection failed.*\): check --db"):
        db.load_records(study_dir, "postgresql+psycopg://x:secret@127.0.0.1:1/db")


def test_cli_report_correlates_with_the_metrics_file(tmp_path):
    study_dir = make_study(tmp_path)
    engine = db.open_database(db.default_url(study_dir))
    study = load_study(study_dir)
    for _ in range(3):
        rater, _ = db.new_rater(engine, study)
        for t in study.trials:
            db.store_rating(engine, rater.id, t.trial.id, 4 if t.trial.method == "alpha" else 2, None)
    engine.dispose()
    metrics = tmp_path / "eval.json"
    metrics.write_text(json.dumps({"results": [{"model": "alpha", "dataset": "x", "scale": 4, "psnr_y": 30.0},
                                               {"model": "beta", "dataset": "x", "scale": 4, "psnr_y": 28.0}]}))
    out = tmp_path / "report.json"
    assert main(["mos", "report", str(study_dir), "--json", str(out), "--metrics", str(metrics)]) == 0
    correlations = json.loads(out.read_text())["correlations"]
    assert [(c["metric"], c["n"]) for c in correlations] == [("psnr_y", 2)]


def test_postgresql_urls_use_psycopg_3():
    with pytest.raises(SrlabError, match=r"cannot open the database 'postgresql\+psycopg://x@127.0.0.1:1/db'"):
        db.open_database("postgresql://x@127.0.0.1:1/db")  # psycopg2, SQLAlchemy's default, is not needed
