"""Small studies on disk and app clients on SQLite (and on PostgreSQL when SRLAB_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

POSTGRES_URL = os.environ.get("SRLAB_TEST_POSTGRES_URL")
METHODS = ("alpha", "beta")
IMAGES = ("img1", "img2")


def write_folders(root: Path, methods=METHODS, images=IMAGES) -> tuple[dict[str, Path], Path]:
    """Folders of tiny PNGs: one per method and a reference, every image present in each."""
    rng = np.random.default_rng(0)
    folders = {name: root / name for name in (*methods, "hr")}
    for folder in folders.values():
        folder.mkdir(parents=True)
        for image in images:
            Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / f"{image}.png")
    reference = folders.pop("hr")
    return folders, reference


def make_study(root: Path, design: str = "acr", **options) -> Path:
    from srlab.mos.create import create_study

    folders, reference = write_folders(root / "outputs")
    study_dir = root / "study"
    create_study(study_dir, folders, reference=reference, design=design, **options)
    return study_dir


def _empty_postgres(url: str) -> None:
    """Drop every table (the app's and Alembic's) so each test starts from an empty database."""
    from sqlalchemy import MetaData, create_engine

    engine = create_engine(url)
    metadata = MetaData()
    metadata.reflect(engine)
    metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str | None:
    """None (the study's SQLite file) or the test PostgreSQL server, emptied."""
    if request.param == "sqlite":
        return None
    if not POSTGRES_URL:
        pytest.skip("SRLAB_TEST_POSTGRES_URL is not set: no PostgreSQL server for this run (.ci/run starts one)")
    _empty_postgres(POSTGRES_URL)
    return POSTGRES_URL
