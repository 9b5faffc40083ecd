"""``step: multitask``: super-resolution plus image-category classification on shared features.

The batches carry the category of their image (``data.labels: folders``, :mod:`srlab.data.labels`). A
small head (:class:`CategoryHead`: a 3x3 convolution, ReLU, global average pooling, a linear layer) reads
an intermediate feature map of the model: the input of the module ``multitask.features`` (by default the
model's last top-level module with weights: rdsr's ``tail``, so the head sees the fused features just
before the upsampler), taken by a forward pre-hook during the model's ordinary forward. The objective:

    L = losses(model(LR), HR) + multitask.weight * cross_entropy(head(features), category)

so the classification gradient reaches the SR network's weights through the shared features. With weight
0 the head learns on detached features instead (a probe): the SR network trains exactly as ``step:
supervised`` trains it, and the run still measures how well its features tell the categories apart.

The head is a generator of the step (trained by the model's optimiser, saved in ``state.pt`` with the
class list it was trained on: resuming on folders with other categories is a one-line error). Validation
adds the head's accuracy on the validation images (``val_acc``; each whole LR image is one prediction).
The step runs on one process (the head is not DDP-wrapped).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from srlab.data.labels import label_classes
from srlab.errors import SrlabError
from srlab.models.color_space import COLOR_SPACE_ARG, ColorSpaceModel, build_in_color_space
from srlab.train.config import TrainConfig
from srlab.train.distributed import Dist
from srlab.train.state import RunState
from srlab.train.step import backward_step, forward_objective, register_step, update_ema
from srlab.train.step_modules import StepModules

CLASSIFIER = "classifier"


class CategoryHead(nn.Module):
    """Features (B, C, H, W) -> category logits (B, len(classes)); remembers its classes in its state."""

    def __init__(self, in_channels: int, classes: tuple[str, ...], width: int) -> None:
        super().__init__()
        self.classes = tuple(classes)
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.linear = nn.Linear(width, len(classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(F.relu(self.conv(features.float())).mean(dim=(2, 3)))

    def get_extra_state(self) -> dict:
        return {"classes": list(self.classes)}

    def set_extra_state(self, state: dict) -> None:
        saved = tuple(state["classes"])
        if saved != self.classes:
            raise SrlabError(
                f"the run's category head was trained on the categories {', '.join(saved)}, but the data folders "
                f"now give {', '.join(self.classes)}: resume with the run's folders, or start a new run"
            )


def feature_module_name(model: nn.Module, name: str) -> str:
    """The module whose input the head reads: ``name``, or the last top-level module with weights of the
    network (inside a colour-space wrapper, ``data.color_space``, the network it runs: ``net.tail``)."""
    if not name:
        prefix, network = "", model
        while isinstance(network, ColorSpaceModel):
            prefix, network = f"{prefix}net.", network.net
        with_weights = [child for child, module in network.named_children() if any(True for _ in module.parameters())]
        if not with_weights:
            raise SrlabError("the model has no module with weights to read features from: set multitask.features")
        return prefix + with_weights[-1]
    try:
        model.get_submodule(name)
    except AttributeError:
        known = ", ".join(child for child, _ in model.named_children())
        raise SrlabError(f"multitask.features {name!r} is not a module of the model: use one of {known} "
                         "(or a dotted path into them)") from None
    return name


class FeatureTap:
    """The input of ``model``'s module ``name`` at the model's last forward (a forward pre-hook)."""

    def __init__(self, model: nn.Module, name: str) -> None:
        self.module = model.get_submodule(feature_module_name(model, name))
        self.features: torch.Tensor | None = None

    @contextlib.contextmanager
    def watching(self) -> Iterator[FeatureTap]:
        def keep(_module: nn.Module, inputs: tuple) -> None:
            self.features = inputs[0]

        handle = self.module.register_forward_pre_hook(keep)
        try:
            yield self
        finally:
            handle.remove()

    def take(self) -> torch.Tensor:
        if self.features is None:
            raise SrlabError("multitask.features: the model's forward did not call that module: name another one")
        features, self.features = self.features, None
        return features


def build_category_head(config: TrainConfig) -> StepModules:
    """The head, sized by one forward of the model on a small image (its feature width)."""
    classes = label_classes(config.data.train_dir, config.data.val_dir)
    with torch.random.fork_rng():  # the probe model's initialisation leaves the run's RNG alone
        args = {**config.model.args, COLOR_SPACE_ARG: config.data.color_space}  # the network the run trains
        probe = build_in_color_space(config.model.name, scale=config.scale, args=args).eval()
        tap = FeatureTap(probe, config.multitask.features)
        with torch.no_grad(), tap.watching():
            probe(torch.zeros(1, 3, 48, 48))
        channels = tap.take().shape[1]
    head = CategoryHead(channels, classes, config.multitask.head_channels)
    return StepModules(generators={CLASSIFIER: head}, discriminators={})


@register_step("multitask", modules=build_category_head)
def multitask_step(
    run: RunState, lr_batch: torch.Tensor, hr_batch: torch.Tensor, *, config: TrainConfig, dist: Dist,
    lr: float, d_lr: float, labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One step on a labelled batch (module docstring); the terms add the cross-entropy ``ce``."""
    if dist.enabled:
        raise SrlabError("step multitask runs on one process: start it without torchrun")
    if labels is None:
        raise SrlabError("step multitask needs labelled batches: set data.labels: folders")
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    tap = FeatureTap(run.model, config.multitask.features)
    with tap.watching():
        loss, terms, _ = forward_objective(run, lr_batch, hr_batch, config=config)
    features = tap.take()
    weight = config.multitask.weight
    logits = run.step_modules.generators[CLASSIFIER](features if weight > 0 else features.detach())
    ce = F.cross_entropy(logits, labels)
    # weight 0: the probe's loss, on detached features, trains the head alone.
    loss = loss + (weight if weight > 0 else 1.0) * ce
    backward_step(run.optimizer, loss, run.scaler, config.optim.grad_clip)
    if run.ema is not None:
        update_ema(run.ema, run.model, config.ema_decay)
    return loss.detach(), {**terms, "ce": ce.detach()}


@torch.no_grad()
def validation_accuracy(
    model: nn.Module, modules: StepModules, config: TrainConfig, images: list[tuple[str, torch.Tensor, torch.Tensor]],
    labels: list[int], indices: list[int], dist: Dist,
) -> dict[str, float]:
    """``{"acc": ...}``: the share of validation images (all ranks') whose category the head predicts
    from ``model``'s features of the whole LR image."""
    head = modules.generators[CLASSIFIER]
    device = next(head.parameters()).device
    tap = FeatureTap(model, config.multitask.features)
    model.eval()
    correct = []
    with tap.watching():
        for index, (_, lr, _), label in zip(indices, images, labels):
            model(lr.unsqueeze(0).to(device))
            correct.append((index, int(head(tap.take()).argmax(dim=1).item() == label)))
    model.train()
    gathered = sorted(pair for part in dist.all_gather_object(correct) for pair in part)
    return {"acc": sum(hit for _, hit in gathered) / max(len(gathered), 1)}
