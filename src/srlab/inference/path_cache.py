"""The on-disk cache of inference path choices (:mod:`srlab.inference.paths`), so that the measurement
behind ``--path auto`` is paid once per (model, weights, input shape, threads, CPU/GPU model, torch
version, precision).

One JSON file, ``$SRLAB_HOME/inference_paths.json`` (``SRLAB_HOME`` defaults to ``~/.cache/srlab``),
written atomically. A file that cannot be read as such a cache is ignored with a warning and rewritten at
the next choice; a cache that cannot be written costs only the measurement next time.

Each choice records the machine's load when it was measured (the 1-minute load average per usable CPU). A
choice measured on a busy machine (load >= ``BUSY_LOAD``) is measured again the first time the machine is
quiet (load < ``QUIET_LOAD``): under load the paths that need free cores and caches lose their lead (the
2-thread rows of ``bench/bench_latency.py`` chose channels_last or compile beside other jobs where bf16 won
alone), and such a choice would otherwise stay for good.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from srlab.errors import SrlabWarning
from srlab.fileio import atomic_path
from srlab.inference.cache_keys import code_fingerprint, device_model, srlab_home, weights_fingerprint
from srlab.inference.paths import Selection
from srlab.inference.threads import busy_cpus, usable_cpus
from srlab.models.registry import spec_of

FORMAT = 1
BUSY_LOAD, QUIET_LOAD = 1.0, 0.5  # load average per usable CPU


def machine_load() -> float:
    """The 1-minute load average per CPU this process may use."""
    return busy_cpus() / usable_cpus()




class PathCache:
    def __init__(self, file: str | os.PathLike[str] | None = None) -> None:
        self.file = Path(file) if file is not None else srlab_home() / "inference_paths.json"

    def key(self, model: nn.Module, shape: tuple[int, ...], precision: str, device: torch.device, *,
            compile_from: float | None = None) -> str:
        """``compile_from``: a compile threshold other than the default, which a choice also depends on."""
        spec = spec_of(model)
        fields = {
            "model": spec.name, "form": spec.form, "scale": spec.scale, "args": dict(spec.args), "weights": weights_fingerprint(model),
            "shape": list(shape), "threads": torch.get_num_threads(), "device": device_model(device),
            "torch": torch.__version__, "precision": precision, "srlab": code_fingerprint(),
        }
        if compile_from is not None:
            fields["compile_from"] = compile_from
        return json.dumps(fields, sort_keys=True, default=str)

    def get(self, key: str) -> Selection | None:
        entry = self._read().get(key)
        if entry is None:
            return None
        if isinstance(entry, dict) and entry.get("load", 0) >= BUSY_LOAD and machine_load() < QUIET_LOAD:
            return None  # measured on a busy machine: measure again now that it is quiet
        try:
            return Selection.from_json(entry)
        except (KeyError, TypeError, ValueError):
            self._warn("an entry has the wrong form")
            return None

    def put(self, key: str, selection: Selection) -> None:
        entries = self._read()
        entries[key] = {**selection.to_json(), "load": round(machine_load(), 2)}
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.file) as tmp:
                tmp.write_text(json.dumps({"format": FORMAT, "entries": entries}, indent=1) + "\n")
        except OSError as e:
            warnings.warn(f"could not write the inference path cache '{self.file}' ({e.strerror or e}): "
                          "the choice is measured again next time", SrlabWarning, stacklevel=2)

    def _read(self) -> dict:
        try:
            text = self.file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as e:
            self._warn(e.strerror or str(e))
            return {}
        try:
            data = json.loads(text)
        except ValueError:
            self._warn("not valid JSON")
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), dict):
            self._warn(f"not a format-{FORMAT} cache")
            return {}
        return data["entries"]

    def _warn(self, why: str) -> None:
        warnings.warn(f"ignoring the inference path cache '{self.file}' ({why}): it is rebuilt",
                      SrlabWarning, stacklevel=3)
