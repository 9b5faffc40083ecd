"""Reading and writing model weights.

srlab writes safetensors files whose metadata records the model (name, hyper-parameters, scale), so
a checkpoint alone is enough to rebuild its model. It reads those and the official ``.pth`` releases
of other projects, which wrap their state dict in various ways. Untrusted pickles are never executed:
``.pth`` files go through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from fnmatch import fnmatchcase
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import nn

from srlab.errors import SrlabError
from srlab.fileio import atomic_write_bytes
from srlab.lut.files import is_lut_path, read_lut_file
from srlab.models.registry import ModelSpec, list_models, spec_of

FORMAT_VERSION = "1"
# "train": the form a factory builds; "deploy": the fused inference form (srlab.models.deploy).
FORMS = ("train", "deploy")
# Keys under which other toolkits nest the weights, in order of preference (EMA weights first: they
# are what official test scripts evaluate).
_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "model", "net", "generator", "sd")


@dataclass(frozen=True)
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    # The model that wrote it, when srlab wrote it; None for foreign checkpoints.
    model: str | None
    scale: int | None
    args: dict[str, Any]
    path: Path
    # "deploy" for the fused inference form of a re-parameterisable model (srlab.models.deploy).
    form: str = "train"


def save_weights(path: str | Path, model: nn.Module, *, metadata: Mapping[str, str] | None = None) -> None:
    """Write the model's weights and its spec as a safetensors file, atomically."""
    # Serialised in memory and written through atomic_write_bytes: safetensors' own file writer
    # creates owner-only (0600) files.
    atomic_write_bytes(path, weights_bytes(model, metadata=metadata))


# Metadata of the weight files of a step's networks (srlab.train.step_modules), e.g. CAR's resampler.
PART_KEY = "srlab.part"


def weights_bytes(model: nn.Module, *, metadata: Mapping[str, str] | None = None) -> bytes:
    """The safetensors file :func:`save_weights` writes, as bytes."""
    spec = spec_of(model)
    meta = {
        "srlab.format": FORMAT_VERSION,
        "srlab.model": spec.name,
        "srlab.scale": str(spec.scale),
        "srlab.model_args": json.dumps(dict(spec.args), sort_keys=True),
        "srlab.form": spec.form,
        **(metadata or {}),
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return save(tensors, metadata=meta)


def read_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if is_lut_path(path):  # official look-up tables (SR-LUT .npy, a folder of MuLUT tables)
        lut = read_lut_file(path)
        return Checkpoint(lut.tensors, lut.model, lut.scale, lut.args, path)
    if path.is_dir():
        raise SrlabError(f"checkpoint '{path}' is a folder: give the weights file in it (e.g. {path / 'best.safetensors'})")
    if not path.is_file():
        raise SrlabError(f"checkpoint '{path}' does not exist: check the path given to --checkpoint")
    if path.suffix in (".safetensors", ".lut"):  # .lut: `srlab lut export`, safetensors inside
        return _read_safetensors(path)
    return _read_torch(path)


def _read_safetensors(path: Path) -> Checkpoint:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise SrlabError(f"cannot read checkpoint '{path}': not a valid safetensors file ({e})") from None
    if "srlab.model" not in meta:
        return Checkpoint(state, None, None, {}, path)
    version = meta.get("srlab.format", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise SrlabError(
            f"checkpoint '{path}' has srlab format {version!r}, this srlab reads format {FORMAT_VERSION!r}: "
            "upgrade srlab, or use a checkpoint written by this version"
        )
    if PART_KEY in meta:
        raise SrlabError(
            f"'{path}' holds the {meta[PART_KEY]} that a `srlab train` run trains beside its model, not a model: "
            "give the run's best.safetensors or last.safetensors (CAR's pair: `srlab car eval RUN_DIR`)"
        )
    if meta["srlab.model"] not in list_models():
        raise SrlabError(
            f"checkpoint '{path}' records model {meta['srlab.model']!r}, which this srlab does not have "
            "(see `srlab models`): it was written by another srlab version, or edited"
        )
    return Checkpoint(
        state_dict=state,
        model=meta["srlab.model"],
        scale=_recorded_scale(meta, path),
        args=_recorded_args(meta, path),
        path=path,
        form=_recorded_form(meta, path),
    )


# The metadata of a checkpoint is text anyone can edit: each field is checked, and a bad one is named.
def _bad_metadata(path: Path, key: str, value: str, wanted: str) -> SrlabError:
    shown = value if len(value) <= 60 else value[:57] + "..."
    return SrlabError(
        f"checkpoint '{path}' records {key}={shown!r}, not {wanted}: the file was edited or is corrupt; "
        "use the file `srlab train` wrote, or remove the srlab.* metadata and pass --model and --scale"
    )


def _recorded_scale(meta: Mapping[str, str], path: Path) -> int | float:
    text = meta.get("srlab.scale", "")
    if text.isascii() and text.isdigit() and int(text) >= 1:
        return int(text)
    # arbitrary-scale models saved at a non-integer scale record it as Python writes the float (2.5)
    if text.isascii() and text.replace(".", "", 1).isdigit() and float(text) > 1 and not float(text).is_integer():
        return float(text)
    raise _bad_metadata(path, "srlab.scale", text, "a positive integer")


def _recorded_args(meta: Mapping[str, str], path: Path) -> dict[str, Any]:
    text = meta.get("srlab.model_args", "{}")
    try:
        args = json.loads(text)
    except ValueError:
        args = None
    if not isinstance(args, dict):
        raise _bad_metadata(path, "srlab.model_args", text, "a JSON object of hyper-parameters")
    return args


def _recorded_form(meta: Mapping[str, str], path: Path) -> str:
    form = meta.get("srlab.form", "train")
    if form not in FORMS:
        raise _bad_metadata(path, "srlab.form", form, f"one of {', '.join(FORMS)}")
    return form


def _read_torch(path: Path) -> Checkpoint:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad or unsafe file
        if "Unsupported global" in str(e):
            raise SrlabError(
                f"cannot read checkpoint '{path}': it holds pickled Python objects, which srlab does not "
                "execute (torch.load weights_only=True); save a plain state dict of tensors instead"
            ) from None
        raise SrlabError(
            f"cannot read checkpoint '{path}': not a PyTorch or safetensors checkpoint, or it is corrupt "
            f"({type(e).__name__})"
        ) from None
    return Checkpoint(_unwrap(obj, path), None, None, {}, path)


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    # Bounded: a pickle can nest a dict inside itself, and unwrapping it would never end.
    for _ in range(len(_WRAPPER_KEYS) + 1):
        if not isinstance(obj, Mapping) or _is_state_dict(obj):
            break
        inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            keys = f"keys: {', '.join(map(str, obj))[:200]}" if obj else "it is empty"
            raise SrlabError(f"checkpoint '{path}' holds no state dict ({keys})")
        obj = inner
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        raise SrlabError(
            f"checkpoint '{path}' holds a {type(obj).__name__}, not a state dict (names mapped to tensors)"
        )
    state = dict(obj)
    # Tensors without stored values (meta) or of another layout (sparse) cannot be copied into a model.
    odd = next((k for k, v in state.items() if v.is_meta or v.layout != torch.strided), None)
    if odd is not None:
        kind = "a meta tensor (no values)" if state[odd].is_meta else f"a {state[odd].layout} tensor"
        raise SrlabError(f"checkpoint '{path}' holds {odd!r} as {kind}: save the dense weights")
    # DataParallel / DistributedDataParallel wrappers prefix every key.
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _is_state_dict(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def load_matching(model: nn.Module, checkpoint: Checkpoint) -> tuple[list[str], list[str]]:
    """Load the tensors whose name, shape and kind (real, integer, complex) match (a warm start); returns
    (loaded, skipped) names."""
    own = model.state_dict()
    loaded = [
        k for k, v in checkpoint.state_dict.items()
        if k in own and tuple(v.shape) == tuple(own[k].shape) and _kind(v) == _kind(own[k])
    ]
    skipped = sorted(set(own) - set(loaded))
    if not loaded:
        raise SrlabError(
            f"warm start: no tensor of '{checkpoint.path}' fits model {spec_of(model).name!r}: "
            "give weights of the same architecture"
        )
    model.load_state_dict({**own, **{k: checkpoint.state_dict[k] for k in loaded}})
    return loaded, skipped


def weight_tensors(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors less those the model derives itself and does not load.

    Official releases of some models also store tensors computed from the configuration or the input
    size (SwinIR's attention masks and relative-position indices): a model lists their names as
    ``fnmatch`` patterns in a ``derived_checkpoint_keys`` class attribute, and they are dropped here.
    """
    patterns = getattr(model, "derived_checkpoint_keys", ())
    return {k: v for k, v in state.items() if not any(fnmatchcase(k, p) for p in patterns)}


def fits(model: nn.Module, checkpoint: Checkpoint) -> bool:
    """Whether the checkpoint has exactly the model's tensor names and shapes."""
    expected = model.state_dict()
    state = weight_tensors(model, checkpoint.state_dict)
    return set(expected) == set(state) and all(tuple(state[k].shape) == tuple(v.shape) for k, v in expected.items())


def _kind(tensor: torch.Tensor) -> str:
    return "complex" if tensor.is_complex() else "real" if tensor.is_floating_point() else "integer"


def load_state_dict_strict(model: nn.Module, checkpoint: Checkpoint) -> None:
    """Load with exact key and shape matching, explaining a mismatch in one line."""
    spec: ModelSpec = spec_of(model)
    expected = model.state_dict()
    state = weight_tensors(model, checkpoint.state_dict)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    # Loading copies values into the model's tensors: integers, booleans or complex numbers in place of
    # real weights would be converted silently (complex ones losing their imaginary part).
    wrong_kind = [k for k in expected if k in state and _kind(state[k]) != _kind(expected[k])]
    if missing or unexpected or wrong_shape or wrong_kind:
        details = []
        if missing:
            details.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong_shape:
            k = wrong_shape[0]
            details.append(
                f"{len(wrong_shape)} of another shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)})"
            )
        if wrong_kind:
            k = wrong_kind[0]
            details.append(f"{len(wrong_kind)} of another dtype (e.g. {k}: {state[k].dtype} vs {expected[k].dtype})")
        raise SrlabError(
            f"checkpoint '{checkpoint.path}' does not fit model {spec.name!r} x{spec.scale}: "
            f"{'; '.join(details)} — pass the --model and --scale it was trained for"
        )
    model.load_state_dict(state, strict=True)
