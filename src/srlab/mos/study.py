"""A MOS study folder: ``study.json`` and the images it shows, all inside the folder.

``study.json`` holds the design (:data:`srlab.mos.records.DESIGNS`), the method names, the image names,
the trials (:class:`srlab.mos.records.Trial` as JSON objects), the seed that drew the checks, and for every
trial the files it shows, relative to the study folder. The web app serves only these files, so what a
rater's browser can fetch never leaves the folder. Making a study (copying images, degrading the bad
checks) is :mod:`srlab.mos.create`; this module only reads and validates, without torch, so the web app
starts quickly.

Pseudo-methods: ``_bad`` is the method of a deliberately degraded image (an attention check). In ACR/DCR a
bad check rates ``_bad``'s image (it should get a low score); in a pair design it pairs a real method with
``_bad`` (``_bad`` should lose).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from srlab.errors import SrlabError
from srlab.mos.records import CHECK_KINDS, DESIGNS, Trial

STUDY_FILE = "study.json"
FORMAT_VERSION = 1
BAD_METHOD = "_bad"
# Method names appear in folder names and in the report: letters, digits and . _ - only, not starting with _.
METHOD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class StudyTrial:
    """A trial and the files it shows: ``first`` (the rated image, or pair's ``trial.method`` image),
    ``second`` (pair's ``trial.other`` image), ``reference`` (dcr)."""

    trial: Trial
    first: str
    second: str | None = None
    reference: str | None = None


@dataclass(frozen=True)
class Study:
    folder: Path
    design: str
    methods: tuple[str, ...]
    images: tuple[str, ...]
    trials: tuple[StudyTrial, ...]
    seed: int

    _by_id: dict[str, StudyTrial] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {t.trial.id: t for t in self.trials})

    def trial(self, trial_id: str) -> StudyTrial | None:
        return self._by_id.get(trial_id)

    def records(self) -> list[Trial]:
        return [t.trial for t in self.trials]


def study_to_json(design: str, methods: list[str], images: list[str], trials: list[StudyTrial], seed: int,
                  source: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION, "design": design, "methods": methods, "images": images, "seed": seed,
        "source": source,
        "trials": [{**asdict(t.trial), "files": _files_json(t)} for t in trials],
    }


def _files_json(t: StudyTrial) -> dict[str, str]:
    files = {"first": t.first, "second": t.second, "reference": t.reference}
    return {key: value for key, value in files.items() if value is not None}


def load_study(folder: str | Path) -> Study:
    """Read and check ``folder/study.json``; a missing or corrupt file is a one-line SrlabError."""
    folder = Path(folder)
    path = folder / STUDY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SrlabError(f"'{folder}' is not a MOS study (no {STUDY_FILE}): make one with `srlab mos create`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SrlabError(f"'{path}' cannot be read ({e}): recreate the study with `srlab mos create`") from None
    try:
        return _parse(folder, data)
    except (KeyError, TypeError, ValueError) as e:
        raise SrlabError(f"'{path}' is not a valid study file ({e}): recreate it with `srlab mos create`") from None


def _parse(folder: Path, data: dict[str, Any]) -> Study:
    if data["format"] != FORMAT_VERSION:
        raise ValueError(f"format {data['format']}, this srlab reads {FORMAT_VERSION}")
    design = data["design"]
    if design not in DESIGNS:
        raise ValueError(f"design {design!r} is none of {', '.join(DESIGNS)}")
    trials = []
    root = folder.resolve()
    for item in data["trials"]:
        files = item["files"]
        trial = Trial(item["id"], item["image"], item["method"], item.get("other"), item.get("check"),
                      item.get("repeats"))
        if trial.check is not None and trial.check not in CHECK_KINDS:
            raise ValueError(f"trial {trial.id}: check {trial.check!r} is none of {', '.join(CHECK_KINDS)}")
        for name in files.values():
            _check_inside(root, name)
        trials.append(StudyTrial(trial, files["first"], files.get("second"), files.get("reference")))
    ids = [t.trial.id for t in trials]
    if len(set(ids)) != len(ids):
        raise ValueError("two trials share an id")
    return Study(folder, design, tuple(data["methods"]), tuple(data["images"]), tuple(trials), int(data["seed"]))


def _check_inside(root: Path, name: str) -> None:
    """A study file must be a relative path inside the study folder (after symlinks), never outside it."""
    if not isinstance(name, str) or Path(name).is_absolute():
        raise ValueError(f"file {name!r} is not a relative path")
    resolved = (root / name).resolve()
    if not resolved.is_relative_to(root):
        raise ValueError(f"file {name!r} leaves the study folder")
