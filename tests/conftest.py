"""Shared fixtures: small real photographs (scikit-image ships them) written as image folders, and the one
way to reach the test oracles in ../shared."""

from __future__ import annotations

import functools
import json
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(scope="session", autouse=True)
def _own_srlab_home(tmp_path_factory):
    """srlab's cache (inference path choices) in a fresh folder: tests neither read nor fill the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SRLAB_HOME", str(tmp_path_factory.mktemp("srlab_home")))
        yield


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """One intra-op thread: on a shared 2-core machine torch's threads spin against other processes and
    small workloads run up to 10x slower; the suite's tiny models gain nothing from a second thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_configure(config):
    """`make test` runs on pytest-xdist workers: each gets a PostgreSQL database of its own on the test
    server (the MOS tests empty theirs before each test), before any test module reads the URL."""
    url, worker = os.environ.get("SRLAB_TEST_POSTGRES_URL"), os.environ.get("PYTEST_XDIST_WORKER")
    if url and worker:
        os.environ["SRLAB_TEST_POSTGRES_URL"] = _database_of_its_own(url, worker)


def _database_of_its_own(url: str, worker: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(url)
    name = f"{server.database}_{worker}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        if connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}).first() is None:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


# ../shared holds the test oracles beside the repository (benchmarks, official weights, references); a
# user's clone has none, and every test that reads it skips there. Tests reach it only through these names.
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BENCHMARKS = SHARED / "benchmarks"
OFFICIAL_WEIGHTS = SHARED / "official-weights"
OFFICIAL_STATE_DICTS = SHARED / "reference" / "official-state-dicts.json"


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def config_as_written(name: str):
    """``configs/<name>.yaml`` applied to the defaults and checked as `srlab train` checks it (with
    placeholder data folders): a TrainConfig, or the SrlabError a user would see."""
    from srlab.train.config import TrainConfig, apply_overrides, load_yaml, validate
    from srlab.train.stages import check_stages

    config = TrainConfig()
    apply_overrides(config, load_yaml(CONFIGS / f"{name}.yaml"))
    config.data.train_dir = config.data.val_dir = "x"
    if config.step == "unpaired":
        config.data.unpaired_lr_dir = "x"
    validate(config)
    check_stages(config)
    return config


def needs_shared(*paths: Path) -> pytest.MarkDecorator:
    """Skip unless every one of ``paths`` (folders or files in ../shared) exists."""
    missing = [f"../shared/{p.relative_to(SHARED).as_posix()}" for p in paths if not p.exists()]
    return pytest.mark.skipif(bool(missing), reason=f"{' and '.join(missing)} absent")


needs_benchmarks = needs_shared(BENCHMARKS)
needs_weights = needs_shared(OFFICIAL_WEIGHTS)
needs_reference = needs_shared(OFFICIAL_STATE_DICTS)


@functools.cache
def official_state_dicts() -> dict:
    """The official parameter names and shapes per model and scale (read once; do not modify)."""
    return json.loads(OFFICIAL_STATE_DICTS.read_text())


def photo(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """A scikit-image sample photo as uint8 RGB, optionally resized to (width, height)."""
    import skimage.data

    image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    if size is not None:
        image = image.resize(size, Image.BICUBIC)
    return np.asarray(image)


def write_folder(folder: Path, names: dict[str, tuple[str, tuple[int, int] | None]]) -> Path:
    """Write {file stem: (photo name, size)} as PNGs into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, (name, size) in names.items():
        Image.fromarray(photo(name, size)).save(folder / f"{stem}.png")
    return folder


@pytest.fixture(scope="session")
def tiny_photos(tmp_path_factory) -> dict[str, Path]:
    """train/ (4 photos, 96x72) and val/ (2 photos, 60x48) folders of real photographs."""
    root = tmp_path_factory.mktemp("photos")
    train = write_folder(root / "train", {
        "astronaut": ("astronaut", (96, 72)), "rocket": ("rocket", (96, 72)),
        "coffee": ("coffee", (96, 72)), "hubble": ("hubble_deep_field", (96, 72)),
    })
    val = write_folder(root / "val", {"chelsea": ("chelsea", (60, 48)), "retina": ("retina", (60, 48))})
    return {"train": train, "val": val, "root": root}


def photo_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) or (H, W) uint8 -> (C, H, W) float64 in [0, 1]."""
    a = img if img.ndim == 3 else img[..., None]
    return torch.from_numpy(np.array(a)).permute(2, 0, 1).to(torch.float64) / 255.0


# Three increasing strengths of each distortion (the metrics' monotonicity tests).
DISTORTION_LEVELS = {"blur": (0.8, 1.6, 3.2), "noise": (4, 12, 30), "jpeg": (60, 25, 8), "bicubic": (2, 3, 4)}


def distort(img: np.ndarray, kind: str, level: float) -> np.ndarray:
    """A distorted copy of a uint8 photo: Gaussian blur, Gaussian noise, JPEG, or bicubic down-up."""
    import io

    from PIL import ImageFilter

    pil = Image.fromarray(img)
    if kind == "blur":
        return np.asarray(pil.filter(ImageFilter.GaussianBlur(level)))
    if kind == "noise":
        rng = np.random.default_rng(0)
        return np.clip(img + rng.normal(0, level, img.shape), 0, 255).round().astype(np.uint8)
    if kind == "jpeg":
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=int(level))
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert(pil.mode))
    if kind == "bicubic":
        w, h = pil.size
        small = pil.resize((round(w / level), round(h / level)), Image.BICUBIC)
        return np.asarray(small.resize((w, h), Image.BICUBIC))
    raise ValueError(kind)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """Run ``srlab argv...`` in-process; returns (exit code, stdout, stderr)."""
    from srlab.cli.main import main

    capsys.readouterr()  # drop whatever came before
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse (--help, --version, flag errors)
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    """An empty weights cache (SRLAB_HOME), and no network: a download attempt fails the way it does offline."""
    from srlab.models import official

    monkeypatch.setenv("SRLAB_HOME", str(tmp_path / "home"))

    def offline(request, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(official, "urlopen", offline)
    return tmp_path / "home"


def tiny_train_config(tiny_photos, out, **overrides):
    """A training run that takes seconds: a tiny rdsr_s x2 on the ``tiny_photos`` folders (epochs 2 unless
    overridden; other overrides set TrainConfig's fields)."""
    from srlab.train.config import TrainConfig

    config = TrainConfig(scale=2, epochs=overrides.pop("epochs", 2), out=str(out), seed=0)
    config.model.name = "rdsr_s"
    config.model.args = {"channels": 8, "num_blocks": 1}
    config.data.train_dir, config.data.val_dir = str(tiny_photos["train"]), str(tiny_photos["val"])
    config.data.patch_size, config.data.batch_size, config.data.repeat = 24, 4, 3
    config.optim.lr = 2e-3
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def assert_sample_is_a_function_of_the_seed(model: torch.nn.Module) -> None:
    """A diffusion model's sample (``forward(lr)``, eval mode) repeats for its seed and changes with the seed
    and with the step count (``set_sampler``); it is an image in [0, 1]."""
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        first, again = model(x), model(x)
        model.set_sampler(seed=2)
        other = model(x)
        model.set_sampler(steps=2)
        fewer = model(x)
    assert torch.equal(first, again) and not torch.equal(first, other) and not torch.equal(other, fewer)
    assert 0 <= first.min() and first.max() <= 1
