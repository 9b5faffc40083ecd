"""Architecture search under a MAC budget: an Optuna study whose trials are short ``srlab train`` runs.

Every trial draws an architecture from a search space (:mod:`srlab.nas.space`), counts its MACs with
srlab's counter (:func:`srlab.models.complexity.count_macs`) on the stated LR size and, over the budget,
is pruned there, untrained. Within it, the proxy is a short training run through the library
(:func:`srlab.train.trainer.train`) into ``OUT/trials/<number>/``; the trial's values are the validation
PSNR-Y (maximised), the MACs and the CPU latency of one LR image of the same size (minimised), so the
study's Pareto front is Optuna's own (``study.best_trials``).

Scheduling is Optuna's: the trials live in an RDB storage (SQLite in ``OUT/study.db`` by default; a
PostgreSQL URL for many machines, each running the same command), ``jobs`` worker processes on one machine
share it, and each stops when the study holds ``trials`` complete trials (``MaxTrialsCallback``; workers
running in parallel may finish a few more). An architecture drawn again completes with its first trial's
values, untrained (a sampler learns from it like from any trial; the front lists it once). Rerunning the command continues the study: the storage's
heartbeat marks a trial left running by a killed process as failed and ``RetryFailedTrialCallback``
queues it again with the same architecture.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml

from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.models.complexity import count_macs, paper_parameter_count
from srlab.models.create import create_model
from srlab.nas.space import SearchSpace, get_space
from srlab.profile.latency import model_latency, torch_threads
from srlab.train.config import TrainConfig, apply_overrides, validate
from srlab.train.trainer import train

SAMPLERS = ("tpe", "nsga2", "random")
# Values of a trial, in this order: validation PSNR-Y, MACs, CPU latency (ms).
DIRECTIONS = ("maximize", "minimize", "minimize")
# Heartbeat of running trials (seconds): a trial whose process stopped beating for the grace period is stale.
HEARTBEAT_S = 60
GRACE_S = 180
# Short proxy training; every key can be overridden (SearchSettings.proxy).
PROXY_DEFAULTS: dict[str, Any] = {
    "epochs": 10, "data": {"patch_size": 96, "batch_size": 8}, "device": "cpu",
}
# Settings a resumed study must share with the command that continues it.
_STUDY_KEYS = ("space", "budget_macs", "scale", "lr_size", "proxy")
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


@dataclass
class SearchSettings:
    space: str
    budget_macs: int
    scale: int
    trials: int
    train_dir: str
    val_dir: str
    out: Path
    # (height, width) of the LR image the MACs and latency are measured on.
    lr_size: tuple[int, int]
    storage: str = ""  # empty: sqlite:///OUT/study.db
    study_name: str = ""  # empty: <space>_x<scale>
    sampler: str = "tpe"
    jobs: int = 1
    threads: int = 1  # CPU threads of each trial (training and latency)
    seed: int = 0
    # Random trials before TPE models the results (NSGA-II: its population size).
    startup_trials: int = 4
    latency_repeats: int = 5
    # Overrides of the proxy's training config (TrainConfig keys) over PROXY_DEFAULTS.
    proxy: dict[str, Any] = field(default_factory=dict)
    heartbeat_s: int = HEARTBEAT_S
    grace_s: int = GRACE_S


@dataclass(frozen=True)
class SearchResult:
    pareto: list[dict[str, Any]]
    best: dict[str, Any]
    complete: int
    pruned: int
    failed: int


def parse_macs(text: str) -> int:
    """``"2G"`` -> 2_000_000_000 (suffixes K, M, G, T; decimal: the papers' G is 10^9)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMGT]?)\s*", text.upper())
    if not match or float(match[1]) <= 0:
        raise SrlabError(f"--budget_macs {text!r} is not a MAC count: use e.g. 2G, 800M or 2.5e9")
    return int(float(match[1]) * _UNITS[match[2]])


def storage_url(settings: SearchSettings) -> str:
    return settings.storage or f"sqlite:///{(settings.out / 'study.db').absolute()}"


def study_name(settings: SearchSettings) -> str:
    return settings.study_name or f"{settings.space}_x{settings.scale}"


def _optuna():
    try:
        import optuna
    except ImportError:
        raise SrlabError("srlab nas needs Optuna: pip install 'srlab[nas]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def architecture_macs(space: SearchSpace, args: dict[str, Any], settings: SearchSettings) -> int:
    return count_macs(create_model(space.model, scale=settings.scale, args=args), settings.lr_size)


def check_settings(settings: SearchSettings) -> SearchSpace:
    """Refuse what cannot run, before any study is made."""
    _optuna()
    space = get_space(settings.space)
    if settings.sampler not in SAMPLERS:
        raise SrlabError(f"unknown sampler {settings.sampler!r} (--sampler): use one of {', '.join(SAMPLERS)}")
    for flag, value in (("--trials", settings.trials), ("--jobs", settings.jobs), ("--threads", settings.threads)):
        if value < 1:
            raise SrlabError(f"{flag} must be >= 1, got {value}")
    for flag, folder in (("--train_dir", settings.train_dir), ("--val_dir", settings.val_dir)):
        if not Path(folder).is_dir():
            raise SrlabError(f"{flag} '{folder}' is not a folder: give the folder of the proxy's images")
    cheapest = min(architecture_macs(space, args, settings) for args in space.smallest)
    if settings.budget_macs < cheapest:
        h, w = settings.lr_size
        raise SrlabError(
            f"--budget_macs {settings.budget_macs / 1e9:.3g}G is below the smallest architecture of space "
            f"{space.name!r} ({cheapest / 1e9:.3g}G on a {h}x{w} LR image): raise the budget or lower --lr_size"
        )
    validate(_proxy_config(settings, space, {}, settings.out / "trials" / "check"))  # a bad proxy fails here, not per trial
    return space


def _proxy_config(settings: SearchSettings, space: SearchSpace, args: dict[str, Any], run_dir: Path) -> TrainConfig:
    config = TrainConfig()
    apply_overrides(config, PROXY_DEFAULTS)
    apply_overrides(config, {
        "scale": settings.scale, "seed": settings.seed, "out": str(run_dir),
        "data": {"train_dir": settings.train_dir, "val_dir": settings.val_dir},
    })
    try:
        apply_overrides(config, settings.proxy)
    except SrlabError as e:
        raise SrlabError(f"{e} (in the proxy's training overrides: --proxy_config / --set)") from None
    # One validation, at the end: the trial's score is the trained proxy's PSNR-Y.
    config.val_every, config.val_every_iters = config.epochs, 0
    apply_overrides(config, {"model": {"name": space.model, "args": args}})
    return config


def _objective(settings: SearchSettings, space: SearchSpace) -> Callable[[Any], tuple[float, float, float]]:
    optuna = _optuna()

    def objective(trial) -> tuple[float, float, float]:  # noqa: ANN001 - optuna.Trial
        args = space.suggest(trial)
        model = create_model(space.model, scale=settings.scale, args=args)
        macs = count_macs(model, settings.lr_size)
        trial.set_user_attr("model_args", args)
        trial.set_user_attr("macs", macs)
        trial.set_user_attr("params", paper_parameter_count(model))
        if macs > settings.budget_macs:  # rejected before any training
            raise optuna.TrialPruned(f"{macs / 1e9:.3f}G MACs over the budget")
        twin = _trained_twin(trial.study, args)
        if twin is not None:  # a sampler may draw an architecture again: its score is known, not retrained
            trial.set_user_attr("twin_of", twin.number)
            return tuple(twin.values)
        latency = model_latency(model.eval(), settings.lr_size, repeats=settings.latency_repeats, warmup=1,
                                threads=settings.threads)
        run_dir = settings.out / "trials" / str(trial.number)
        result = train(_proxy_config(settings, space, args, run_dir), progress=False)
        print(f"trial {trial.number}: {_describe(args)}: {macs / 1e9:.3f}G MACs, PSNR-Y {result.best_psnr:.3f} dB, "
              f"{latency.median_ms:.1f} ms", flush=True)
        return result.best_psnr, float(macs), latency.median_ms

    return objective


def _trained_twin(study, args: dict[str, Any]):  # noqa: ANN001, ANN202 - optuna.Study, FrozenTrial | None
    complete = study.get_trials(deepcopy=False, states=(_optuna().trial.TrialState.COMPLETE,))
    return next((t for t in complete if t.user_attrs.get("model_args") == args and "twin_of" not in t.user_attrs), None)


def _describe(args: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in args.items())


def _storage(settings: SearchSettings):  # noqa: ANN202 - optuna.storages.RDBStorage
    optuna = _optuna()
    from sqlalchemy.exc import SQLAlchemyError  # Optuna's RDB storage is SQLAlchemy's

    storages = optuna.storages
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna's words; they are what we use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # Optuna 4.9 renamed the retry callback and its argument; the old names remain until 6.0.
            if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):
                retry = {"heartbeat_stale_trial_callback": storages.RetryHeartbeatStaleTrialCallback(max_retry=3)}
            else:
                retry = {"failed_trial_callback": storages.RetryFailedTrialCallback(max_retry=3)}
            return storages.RDBStorage(
                storage_url(settings), heartbeat_interval=settings.heartbeat_s, grace_period=settings.grace_s, **retry
            )
    except (ImportError, ValueError, SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SrlabError(
            f"--storage {storage_url(settings)!r} cannot be opened ({reason}): check the URL, its database server "
            "and its driver (e.g. pip install psycopg2-binary for postgresql://)"
        ) from None


def _sampler(settings: SearchSettings, seed: int):  # noqa: ANN202 - an optuna sampler
    samplers = _optuna().samplers
    if settings.sampler == "random":
        return samplers.RandomSampler(seed=seed)
    if settings.sampler == "nsga2":
        return samplers.NSGAIISampler(population_size=max(2, settings.startup_trials), seed=seed)
    # constant_liar: parallel workers see each other's running trials and spread out.
    return samplers.TPESampler(n_startup_trials=settings.startup_trials, seed=seed, constant_liar=True)


def _study_attrs(settings: SearchSettings) -> dict[str, Any]:
    return {"space": settings.space, "budget_macs": settings.budget_macs, "scale": settings.scale,
            "lr_size": list(settings.lr_size), "proxy": settings.proxy}


def open_study(settings: SearchSettings):  # noqa: ANN201 - optuna.Study
    """The study in the storage (made on first use); a study made with other settings is refused."""
    optuna = _optuna()
    study = optuna.create_study(
        storage=_storage(settings), study_name=study_name(settings), directions=list(DIRECTIONS),
        sampler=_sampler(settings, settings.seed), load_if_exists=True,
    )
    wanted = _study_attrs(settings)
    saved = {k: study.user_attrs[k] for k in _STUDY_KEYS if k in study.user_attrs}
    if not saved:
        for key, value in wanted.items():
            study.set_user_attr(key, value)
    elif saved != wanted:
        differ = ", ".join(f"{k} {saved[k]} (now {wanted[k]})" for k in _STUDY_KEYS if saved.get(k) != wanted[k])
        raise SrlabError(
            f"study {study.study_name!r} in {storage_url(settings)} was made with {differ}: rerun it with "
            f"its settings, or start another with --study NAME or another --out"
        )
    return study


def _count(study, state_name: str) -> int:  # noqa: ANN001 - optuna.Study
    state = getattr(_optuna().trial.TrialState, state_name)
    return len(study.get_trials(deepcopy=False, states=(state,)))


def run_worker(settings: SearchSettings, worker: int) -> None:
    """One worker: trials until the study holds ``settings.trials`` complete ones."""
    optuna = _optuna()
    space = get_space(settings.space)
    with torch_threads(settings.threads):
        study = open_study(settings)
        # A seed of its own for each worker and each rerun: a resumed random search draws new architectures.
        study.sampler = _sampler(settings, settings.seed + 1000 * worker + len(study.trials))
        if _count(study, "COMPLETE") >= settings.trials:
            return
        stop = optuna.study.MaxTrialsCallback(settings.trials, states=(optuna.trial.TrialState.COMPLETE,))
        # No gc after every trial: most are pruned by their MACs before training, and a full collection of
        # torch's object graph costs ~0.4 s each (14 s of a 3-trial test); reference counting frees a trial's model.
        study.optimize(_objective(settings, space), callbacks=[stop], gc_after_trial=False)


def search(settings: SearchSettings) -> SearchResult:
    """Run (or continue) the search, then write ``OUT/pareto.json`` and ``OUT/best.yaml``."""
    check_settings(settings)
    settings.out.mkdir(parents=True, exist_ok=True)
    open_study(settings)  # made once here, so that parallel workers only load it
    if settings.jobs == 1:
        run_worker(settings, 0)
    else:
        with ProcessPoolExecutor(settings.jobs, mp_context=get_context("spawn")) as pool:
            for done in [pool.submit(run_worker, settings, worker) for worker in range(settings.jobs)]:
                done.result()
    return write_results(settings)


def pareto_front(study, model: str) -> list[dict[str, Any]]:  # noqa: ANN001 - optuna.Study
    """The non-dominated complete trials (PSNR-Y up, MACs and latency down), cheapest first; an architecture
    drawn again (``twin_of``) appears once."""
    front = [
        {"trial": t.number, "model": model, "config": t.user_attrs["model_args"], "macs": t.user_attrs["macs"],
         "params": t.user_attrs["params"], "psnr_y": t.values[0], "latency_ms": t.values[2]}
        for t in study.best_trials
        if "twin_of" not in t.user_attrs
    ]
    return sorted(front, key=lambda entry: (entry["macs"], -entry["psnr_y"]))


def write_results(settings: SearchSettings) -> SearchResult:
    study = open_study(settings)
    space = get_space(settings.space)
    complete = _count(study, "COMPLETE")
    if not complete:
        raise SrlabError(f"study {study.study_name!r} has no complete trial: see the trials' logs in {settings.out}/trials")
    front = pareto_front(study, space.model)
    best = max(front, key=lambda entry: entry["psnr_y"])
    with atomic_path(settings.out / "pareto.json") as tmp:
        tmp.write_text(json.dumps(front, indent=2) + "\n")
    with atomic_path(settings.out / "best.yaml") as tmp:
        tmp.write_text(
            f"# srlab nas: trial {best['trial']} of study {study.study_name!r}, {best['macs'] / 1e9:.3f}G MACs on "
            f"{settings.lr_size[0]}x{settings.lr_size[1]}, proxy PSNR-Y {best['psnr_y']:.3f} dB.\n"
            f"# Train it: srlab train --config best.yaml --train_dir DIR --val_dir DIR\n"
            + yaml.safe_dump(best_config(best, settings.scale), sort_keys=False)
        )
    return SearchResult(pareto=front, best=best, complete=complete, pruned=_count(study, "PRUNED"),
                        failed=_count(study, "FAIL"))


def best_config(entry: dict[str, Any], scale: int) -> dict[str, Any]:
    """A ``srlab train --config`` override file: the scale and the architecture."""
    return {"scale": scale, "model": {"name": entry["model"], "args": dict(entry["config"])}}


def format_table(result: SearchResult, settings: SearchSettings) -> str:
    h, w = settings.lr_size
    lines = [f"Pareto front: MACs and CPU latency ({settings.threads} thread(s), median of {settings.latency_repeats}) "
             f"of one {h}x{w} LR image at x{settings.scale}; PSNR-Y of the proxy on {settings.val_dir}",
             f"{'trial':>5}  {'GMACs':>7}  {'params':>8}  {'PSNR-Y':>7}  {'ms':>8}  architecture"]
    for entry in result.pareto:
        mark = "  <- best" if entry is result.best else ""
        lines.append(
            f"{entry['trial']:>5}  {entry['macs'] / 1e9:>7.3f}  {entry['params']:>8}  {entry['psnr_y']:>7.3f}  "
            f"{entry['latency_ms']:>8.1f}  {_describe(entry['config'])}{mark}"
        )
    lines.append(f"{result.complete} complete trials, {result.pruned} over the budget (not trained), "
                 f"{result.failed} failed")
    return "\n".join(lines)
