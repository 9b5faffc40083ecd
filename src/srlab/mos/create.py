"""``srlab mos create``: a study folder from folders of SR outputs (or a ``srlab benchmark`` report's crops).

Images are matched by file stem across the method folders (and the reference folder); a name missing
from one of them is reported and left out. Every image shown is copied into ``STUDY_DIR/images/`` so the
web app serves files from the study folder only. Attention checks are drawn with the study's seed:
``repeat`` checks show a real trial a second time; ``bad`` checks show an image degraded on purpose by
srlab's own degradation ops (heavy Gaussian blur, then strong noise) of the reference (or, without one,
of a method's output). ``study.json`` is written last and atomically; an existing study is never
overwritten.
"""

from __future__ import annotations

import itertools
import json
import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from srlab.data.degrade.kernels import gaussian_kernel
from srlab.data.degrade.ops import blur, gaussian_noise
from srlab.data.io import list_images, read_rgb, write_image
from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.mos.records import DESIGNS, Trial
from srlab.mos.study import BAD_METHOD, METHOD_NAME, STUDY_FILE, StudyTrial, study_to_json
from srlab.report.benchmark import safe_name

REFERENCE = "_reference"
IMAGES = "images"
# A bad check must be obviously bad at any size: a wide blur, then noise of sigma 40 (8-bit units).
BAD_BLUR_SIGMA = 6.0
BAD_NOISE_SIGMA = 40.0


@dataclass(frozen=True)
class CreatedStudy:
    path: Path
    trials: int
    images: list[str]
    left_out: dict[str, list[str]]  # image name -> the folders it is missing from


# A method's images: a folder, or (from a benchmark report) image name -> file.
Source = str | Path | Mapping[str, Path]


def create_study(
    study_dir: str | Path, methods: Mapping[str, Source], *, reference: Source | None = None,
    design: str = "acr", repeats: int = 1, attention_checks: int = 0, seed: int = 0,
) -> CreatedStudy:
    study_dir = Path(study_dir)
    _check_arguments(study_dir, methods, reference, design, repeats, attention_checks)
    folders = dict(methods)
    if reference is not None:
        folders[REFERENCE] = reference
    files, left_out = _match_images(folders)
    images = sorted(files)
    study_dir.mkdir(parents=True, exist_ok=True)
    shown = _copy_images(study_dir, files)
    rng = random.Random(seed)
    trials = _real_trials(design, list(methods), images, shown, repeats)
    trials += _checks(study_dir, design, list(methods), images, shown, trials, attention_checks, rng)
    trials = _shuffled_ids(trials, rng)
    source = {"methods": {name: _describe(folder) for name, folder in methods.items()},
              "reference": None if reference is None else _describe(reference)}
    data = study_to_json(design, list(methods), images, trials, seed, source)
    with atomic_path(study_dir / STUDY_FILE) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return CreatedStudy(study_dir / STUDY_FILE, len(trials), images, left_out)


def _describe(source: Source) -> str:
    if isinstance(source, Mapping):  # a benchmark report's crops: the folder they are in
        return str(next(iter(source.values())).parent)
    return str(source)


def _check_arguments(study_dir: Path, methods: Mapping[str, Source], reference: Source | None, design: str,
                     repeats: int, attention_checks: int) -> None:
    if (study_dir / STUDY_FILE).exists():
        raise SrlabError(f"'{study_dir}' already holds a study ({STUDY_FILE}): choose a new folder or remove it first")
    if design not in DESIGNS:
        raise SrlabError(f"--design {design!r}: choose one of {', '.join(DESIGNS)}")
    for name in methods:
        if not METHOD_NAME.fullmatch(name):
            raise SrlabError(f"--method {name!r}: a method name is letters, digits, '.', '_', '-' (not starting with them)")
    wanted = 2 if design == "pair" else 1
    if len(methods) < wanted:
        raise SrlabError(f"--design {design} needs at least {wanted} --method NAME=FOLDER")
    if design == "dcr" and reference is None:
        raise SrlabError("--design dcr rates against the reference: give --reference FOLDER")
    if repeats < 1:
        raise SrlabError(f"--repeats must be at least 1, got {repeats}")
    if attention_checks < 0:
        raise SrlabError(f"--attention_checks must be 0 or more, got {attention_checks}")
    for name, folder in [*methods.items(), ("--reference", reference)]:
        if folder is not None and not isinstance(folder, Mapping) and not Path(folder).is_dir():
            raise SrlabError(f"{name}: '{folder}' is not a folder of images")


def _match_images(folders: Mapping[str, Source]) -> tuple[dict[str, dict[str, Path]], dict[str, list[str]]]:
    """Image stem -> {folder name -> file} for the stems every folder has; and stem -> folders lacking it."""
    found = {}
    for name, folder in folders.items():
        if isinstance(folder, Mapping):
            found[name] = dict(folder)
            continue
        by_stem: dict[str, Path] = {}
        for path in list_images(folder):
            if path.stem in by_stem:
                raise SrlabError(f"'{folder}' holds two images named '{path.stem}' ({by_stem[path.stem].name}, "
                                 f"{path.name}): keep one")
            by_stem[path.stem] = path
        found[name] = by_stem
    stems = set().union(*(set(v) for v in found.values()))
    complete = {s: {name: found[name][s] for name in folders} for s in stems if all(s in found[n] for n in folders)}
    left_out = {s: sorted(n for n in folders if s not in found[n]) for s in stems if s not in complete}
    if not complete:
        raise SrlabError("no image name is in every --method (and --reference) folder: name the SR outputs alike")
    return complete, left_out


def _copy_images(study_dir: Path, files: Mapping[str, Mapping[str, Path]]) -> dict[tuple[str, str], str]:
    """Copy every image into the study; returns (folder name, stem) -> path relative to the study."""
    shown = {}
    for stem, by_folder in files.items():
        for name, path in by_folder.items():
            relative = Path(IMAGES, name, f"{stem}{path.suffix.lower()}")
            (study_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(study_dir / relative) as tmp:
                shutil.copyfile(path, tmp)
            shown[(name, stem)] = relative.as_posix()
    return shown


def _real_trials(design: str, methods: list[str], images: list[str], shown: Mapping[tuple[str, str], str],
                 repeats: int) -> list[StudyTrial]:
    trials = []
    for _, image in itertools.product(range(repeats), images):
        reference = shown.get((REFERENCE, image)) if design == "dcr" else None
        if design == "pair":
            for first, second in itertools.combinations(methods, 2):
                trials.append(StudyTrial(Trial("", image, first, second), shown[(first, image)], shown[(second, image)]))
        else:
            for method in methods:
                trials.append(StudyTrial(Trial("", image, method), shown[(method, image)], reference=reference))
    return trials


def _checks(study_dir: Path, design: str, methods: list[str], images: list[str], shown: Mapping[tuple[str, str], str],
            real: list[StudyTrial], count: int, rng: random.Random) -> list[StudyTrial]:
    """``count`` checks, alternately a repeat of a real trial and a bad image (repeats first)."""
    checks = []
    for k in range(count):
        if k % 2 == 0:
            checks.append(("repeat", rng.randrange(len(real))))
        else:
            checks.append(("bad", rng.choice(images)))
    made = []
    for kind, what in checks:
        if kind == "repeat":
            original = real[what]
            trial = Trial("", original.trial.image, original.trial.method, original.trial.other, "repeat", f"#{what}")
            made.append(StudyTrial(trial, original.first, original.second, original.reference))
        else:
            made.append(_bad_trial(study_dir, design, methods, what, shown, rng))
    return made


def _bad_trial(study_dir: Path, design: str, methods: list[str], image: str, shown: Mapping[tuple[str, str], str],
               rng: random.Random) -> StudyTrial:
    method = rng.choice(methods)
    source = shown.get((REFERENCE, image)) or shown[(method, image)]
    relative = Path(IMAGES, BAD_METHOD, f"{image}.png")
    if not (study_dir / relative).exists():
        degraded = blur(read_rgb(study_dir / source), gaussian_kernel(_odd(4 * BAD_BLUR_SIGMA), BAD_BLUR_SIGMA))
        degraded = gaussian_noise(degraded, BAD_NOISE_SIGMA, gray=False, seed=rng.randrange(2**31))
        (study_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        write_image(study_dir / relative, degraded)
    bad = relative.as_posix()
    if design == "pair":
        return StudyTrial(Trial("", image, method, BAD_METHOD, "bad"), shown[(method, image)], bad)
    reference = shown.get((REFERENCE, image)) if design == "dcr" else None
    return StudyTrial(Trial("", image, BAD_METHOD, None, "bad"), bad, reference=reference)


def _odd(value: float) -> int:
    return int(value) * 2 + 1


def _shuffled_ids(trials: list[StudyTrial], rng: random.Random) -> list[StudyTrial]:
    """Trial ids ``t001``... in a seeded random order, so an id tells a rater nothing (not even a check);
    a repeat's ``repeats`` (``#index`` while making) becomes its original's id."""
    order = list(range(len(trials)))
    rng.shuffle(order)
    width = max(3, len(str(len(trials))))
    ids = {index: f"t{rank + 1:0{width}d}" for rank, index in enumerate(order)}
    renamed = []
    for index, t in enumerate(trials):
        repeats = ids[int(t.trial.repeats[1:])] if t.trial.repeats else None
        trial = Trial(ids[index], t.trial.image, t.trial.method, t.trial.other, t.trial.check, repeats)
        renamed.append(StudyTrial(trial, t.first, t.second, t.reference))
    return sorted(renamed, key=lambda t: t.trial.id)


def benchmark_sources(report_dir: str | Path) -> tuple[dict[str, dict[str, Path]], dict[str, Path]]:
    """The methods and the reference of a ``srlab benchmark`` report folder: its zoomed crops
    (``crops/<data set>_<image>_x<scale>_<label>.png``, :mod:`srlab.report.benchmark`), one study image per
    data set, image and scale; the methods are the report's models (``results.json``), the reference its HR
    crops. Returns (method -> image -> file, image -> HR file)."""
    report_dir = Path(report_dir)
    try:
        models = json.loads((report_dir / "results.json").read_text(encoding="utf-8"))["models"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SrlabError(f"--from_benchmark '{report_dir}': no readable results.json ({e}): give a `srlab benchmark` "
                         "report folder") from None
    labels = {safe_name(str(model)): str(model) for model in models}
    labels[safe_name("HR")] = REFERENCE
    by_label: dict[str, dict[str, Path]] = {label: {} for label in labels.values()}
    # Longest label first, so that a model named like "x_HR" is not taken for the HR crop of image "..._x".
    suffixes = sorted(labels, key=len, reverse=True)
    for path in sorted((report_dir / "crops").glob("*.png")):
        for suffix in suffixes:
            if path.stem.endswith(f"_{suffix}"):
                by_label[labels[suffix]][path.stem[: -len(suffix) - 1]] = path
                break
    reference = by_label.pop(REFERENCE)
    if not reference or not any(by_label.values()):
        raise SrlabError(f"--from_benchmark '{report_dir}': no crops of the models in crops/: run `srlab benchmark` "
                         "with --images N (or --crop) so that it writes them")
    return {name: files for name, files in by_label.items() if files}, reference
