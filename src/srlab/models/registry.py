"""The model registry: every architecture registers its variants here by name.

A variant is a keyword-only factory ``def name(*, scale: int, <hyper-parameters with defaults>)``
decorated with :func:`register_model`, which also records the model's metadata as data
(:class:`ModelInfo`). The generic inference path (padding, tiling, cropping) reads that metadata, so no
model needs an inference script of its own. Metadata that follows from hyper-parameters (the size
multiple of a window size, the receptive radius of a depth) is declared as a function of them and
evaluated for the hyper-parameters a model is built with, so it is never stated twice.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from srlab.errors import SrlabError
from srlab.layers import padding
from srlab.layers.upsamplers import upsampler_entry

# A field that depends on hyper-parameters: a function of the resolved hyper-parameters (the factory's
# defaults updated with the arguments given), e.g. ``size_multiple=lambda a: a["window_size"]``.
Derived = Callable[[Mapping[str, Any]], int]
# "inside": the model's forward pads to its size multiple itself, the way its official code does, and
# crops; the inference path then passes images (and tiles) as they are. Otherwise the mode in which
# the inference path pads the bottom/right of the image before calling the model.
PAD_MODES = ("inside", *padding.PAD_MODES)
# Reads hyper-parameters back from a state dict (names -> tensors): see ModelInfo.args_from_weights.
ArgsReader = Callable[[Mapping[str, Tensor]], dict[str, Any]]


@dataclass(frozen=True)
class ModelInfo:
    """What the toolkit needs to know about an architecture, declared once beside it."""

    paper: str
    # Where the architecture's official code lives (URL; "srlab" for architectures that exist only
    # here) and that code's licence (SPDX identifier; "unknown" where the authors state none).
    origin: str = ""
    licence: str = ""
    scales: tuple[int, ...] = (2, 3, 4)
    # LR height and width must be multiples of this; sizes that are not are padded as ``pad_mode``
    # says and the output cropped. Tiles start at multiples of it too, so tiled inference sees the
    # same grid as untiled.
    size_multiple: int | Derived = 1
    pad_mode: str = "reflect"
    reparameterizable: bool = False
    half_precision_safe: bool = True
    # Modules that the reduced-precision inference paths (bf16, fp16, --half) keep in float32: names
    # (fnmatch patterns over ``named_modules()``, e.g. ``"block_*.attention"``) of the parts whose sums or
    # cancellations lose too much in 16 bits. They keep float32 parameters and take float32 inputs, and
    # what they return stays float32 until a module computing in 16 bits consumes it
    # (srlab.inference.precision.to_reduced_precision).
    float32_modules: tuple[str, ...] = ()
    # How far (in LR pixels) one output pixel looks into the input; the default tile overlap.
    receptive_radius: int | Derived = 16
    # Why tiled or streamed inference is refused ("" where tiles reproduce the whole image up to the known
    # global poolings documented beside a model): set where an output pixel depends on statistics of the
    # whole image that no overlap restores, e.g. instance normalisation (srlab.layers.norm).
    tiling_refusal: str | Callable[[Mapping[str, Any]], str] = ""
    # Parameters the paper leaves out of its count (name substrings), beyond the frozen ones and the
    # training-only branches that every count leaves out (see paper_parameter_count).
    uncounted_parameters: tuple[str, ...] = ()
    # Content-adaptive models: the registered adaptive method (srlab.adaptive) that runs the model with
    # its quality/compute knob in `srlab eval/upscale/tradeoff`; "" for static models.
    adaptive: str = ""
    # Arbitrary-scale models (Meta-SR, LIIF, LTE heads) build for any real scale >= 1, not only for
    # ``scales`` (the integer scales the generic checks run them at); their forward takes
    # ``(lr, size=None)`` and returns MATLAB's output size ``ceil(scale * H) x ceil(scale * W)``
    # unless ``size`` is given.
    arbitrary_scale: bool = False
    # For architectures whose hyper-parameters change their tensors' names or shapes (numbers of blocks,
    # channels): the hyper-parameters a state dict was built with, read from its names and shapes, so
    # that srlab.models.detect recognises weights of any size. It raises KeyError, IndexError or
    # ValueError on weights of another architecture; what it returns is only a proposal, which detection
    # checks by building the model. None: only the variant's defaults are recognised.
    args_from_weights: ArgsReader | None = None

    def __post_init__(self) -> None:
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {', '.join(PAD_MODES)}, got {self.pad_mode!r}")

    def resolve(self, args: Mapping[str, Any]) -> ModelInfo:
        """This info with its derived fields evaluated for the hyper-parameters ``args``."""
        derived = {
            f.name: value(args)
            for f in dataclasses.fields(self)
            if f.name != "args_from_weights" and callable(value := getattr(self, f.name))
        }
        return dataclasses.replace(self, **derived)


@dataclass(frozen=True)
class ModelSpec:
    """How a model instance was built: enough to build it again (stored in checkpoints)."""

    name: str
    scale: int | float  # a float only for arbitrary-scale models at a non-integer scale
    args: Mapping[str, Any] = field(default_factory=dict)
    info: ModelInfo = field(default_factory=lambda: ModelInfo(paper=""))
    # "train": the form the factory builds; "deploy": its fused inference form (srlab.models.deploy).
    form: str = "train"


@dataclass(frozen=True)
class _Entry:
    name: str
    factory: Callable[..., nn.Module]
    info: ModelInfo

    def defaults(self) -> dict[str, Any]:
        params = inspect.signature(self.factory).parameters
        return {k: p.default for k, p in params.items() if k != "scale"}


_REGISTRY: dict[str, _Entry] = {}


def register_model(info: ModelInfo) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a keyword-only variant factory under its function name."""

    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = factory.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        params = inspect.signature(factory).parameters.values()
        if any(p.kind is not inspect.Parameter.KEYWORD_ONLY for p in params):
            raise TypeError(f"model factory {name!r} must take keyword-only arguments")
        if "scale" not in inspect.signature(factory).parameters:
            raise TypeError(f"model factory {name!r} must take `scale`")
        _REGISTRY[name] = _Entry(name, factory, info)
        return factory

    return decorate


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def model_entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise SrlabError(
            f"unknown model {name!r}: choose one of {', '.join(list_models())} (see `srlab models`)"
        ) from None


def model_info(name: str) -> ModelInfo:
    """The metadata of a variant built with its default hyper-parameters."""
    entry = model_entry(name)
    return entry.info.resolve(entry.defaults())


def check_scale(name: str, scale: float) -> int | float:
    """``scale`` as model ``name`` takes it: one of its integer scales, or for an arbitrary-scale model
    any real number >= 1 (an int when it is integral); an :class:`SrlabError` otherwise."""
    info = model_entry(name).info
    if info.arbitrary_scale:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale >= 1 or scale == float("inf"):
            raise SrlabError(f"model {name!r} takes any real scale >= 1, got {scale!r}")
        return int(scale) if float(scale).is_integer() else float(scale)
    if scale not in info.scales:
        raise SrlabError(f"model {name!r} does not support scale {scale}: use one of {list(info.scales)}")
    return int(scale)


def build_model(name: str, *, scale: int | float, args: Mapping[str, Any] | None = None) -> nn.Module:
    """Build a freshly initialised model; ``args`` override the variant's hyper-parameters."""
    entry = model_entry(name)
    scale = check_scale(name, scale)
    defaults = entry.defaults()
    args = dict(args or {})
    unknown = sorted(set(args) - set(defaults))
    if unknown:
        raise SrlabError(
            f"model {name!r} has no hyper-parameter {', '.join(map(repr, unknown))}: "
            f"its hyper-parameters are {', '.join(defaults) or 'none'}"
        )
    for key, value in args.items():
        default = defaults[key]
        if isinstance(default, (bool, int, float, str)) and type(value) is not type(default):
            if not (isinstance(default, float) and type(value) is int):
                raise SrlabError(
                    f"hyper-parameter {key!r} of model {name!r} must be {type(default).__name__}, got {value!r}"
                )
        if type(default) is int and value < 1:
            raise SrlabError(f"hyper-parameter {key!r} of model {name!r} must be >= 1, got {value}")
    try:
        model = entry.factory(scale=scale, **args)
    except (ValueError, RuntimeError, ZeroDivisionError) as e:
        raise SrlabError(f"model {name!r} cannot be built with {args}: {e}") from None
    resolved = {**defaults, **args}
    info = _with_upsampler_reach(entry.info.resolve(resolved), defaults, resolved)
    model.srlab_spec = ModelSpec(name=name, scale=scale, args=resolved, info=info)
    return model


def _with_upsampler_reach(info: ModelInfo, defaults: Mapping[str, Any], args: Mapping[str, Any]) -> ModelInfo:
    """A model built with an upsampler that reaches further than its default one looks that much further
    (receptive radius, rounded up to the size multiple); its own ``receptive_radius`` counts the default's."""
    chosen, default = args.get("upsampler"), defaults.get("upsampler")
    if not isinstance(chosen, str) or chosen == default:
        return info
    extra = upsampler_entry(chosen).reach() - upsampler_entry(default).reach()
    if extra <= 0:
        return info
    radius = -(-(info.receptive_radius + extra) // info.size_multiple) * info.size_multiple
    return dataclasses.replace(info, receptive_radius=radius)


def with_scale(model: nn.Module, scale: float) -> nn.Module:
    """An arbitrary-scale model set to render at ``scale`` (its spec follows); the model is returned."""
    spec = spec_of(model)
    scale = check_scale(spec.name, scale)
    model.scale = scale
    model.srlab_spec = dataclasses.replace(spec, scale=scale)
    return model


def spec_of(model: nn.Module) -> ModelSpec:
    """The spec recorded by :func:`build_model` (models built by hand get an anonymous one)."""
    spec = getattr(model, "srlab_spec", None)
    if spec is None:
        scale = getattr(model, "scale", None)
        if scale is None:
            raise SrlabError("model was not built by srlab.create_model and has no `scale` attribute")
        return ModelSpec(name=type(model).__name__, scale=int(scale))
    return spec


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
