"""``step: unpaired``: weakly supervised training from unpaired LR and HR images (:mod:`srlab.unsupervised.cycle`).

Each batch holds real LR patches x (``data.unpaired_lr_dir``, the target domain) and real HR patches y
(``data.train_dir``), drawn independently (:class:`srlab.data.unpaired.UnpairedPatchDataset`). The step:

1. G's and F's objective, weighted by ``unpaired.*_weight``: ``cycle`` |F(G(x)) - x|_1, ``pseudo_*`` the
   run's ``losses`` on (G(F(y)), y) (F(y) detached: F is trained by the cycle and LR adversarial terms), ``identity`` |G(bicubic(y)) - y|_1, ``adversarial_hr`` on G(x),
   ``adversarial_lr`` on F(y) (terms weighted 0 are skipped); one optimiser step over G's and F's parameters;
2. the discriminators' step (``d_optim``) on (y, G(x)) and (x, F(y)), detached (those of the adversarial
   terms that are on);
3. the EMA update of G.

G runs three times per step (on x, F(y) and bicubic(y)); the DDP wrapper allows one forward per backward
pass, so this step runs on one process (a one-line error under torchrun). F draws its noise from torch's
global generator, which the run's state saves: resumed runs continue exactly.
"""

from __future__ import annotations

import torch

from srlab.data.resize import imresize
from srlab.errors import SrlabError
from srlab.losses import LossInputs
from srlab.train.config import TrainConfig
from srlab.train.distributed import Dist
from srlab.train.state import RunState
from srlab.train.step import backward_step, register_step, update_ema
from srlab.train.step_modules import StepModules
from srlab.unsupervised.cycle import (
    adversarial_discriminator_loss, adversarial_generator_loss, build_degrader, build_discriminators, cycle_loss,
    high_pass,
)


def build_cycle_networks(config: TrainConfig) -> StepModules:
    u = config.unpaired
    return StepModules(
        generators={"degrader": build_degrader(u.degrader, scale=config.scale, channels=u.degrader_channels,
                                               blocks=u.degrader_blocks)},
        discriminators=build_discriminators(u.discriminator_channels),
    )


@register_step("unpaired", modules=build_cycle_networks)
def unpaired_step(
    run: RunState, lr_batch: torch.Tensor, hr_batch: torch.Tensor, *, config: TrainConfig, dist: Dist,
    lr: float, d_lr: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One step of unpaired training (module docstring)."""
    if dist.enabled:
        raise SrlabError("step unpaired runs on one process: start it without torchrun")
    u = config.unpaired
    degrader = run.step_modules.generators["degrader"]
    d_hr, d_lr_net = run.step_modules.discriminators["hr"], run.step_modules.discriminators["lr"]
    x, y = lr_batch, hr_batch
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    sr = run.net(x)[0]
    fake_lr = degrader(y)
    pseudo_sr = run.net(fake_lr.detach())[0]  # F learns the target domain, not what G inverts best
    pseudo, pseudo_terms = run.objective(LossInputs(sr=pseudo_sr, hr=y, lr=fake_lr, scale=config.scale))
    terms = {f"pseudo_{name}": value for name, value in pseudo_terms.items()}
    terms["cycle"] = cycle_loss(degrader, sr, x)
    loss = u.pseudo_pair_weight * pseudo + u.cycle_weight * terms["cycle"]
    # A term weighted 0 is not computed (nor its discriminator trained): "adversarial_hr_weight: 0" saves
    # the HR discriminator, the costliest network of the step.
    lr_seen = high_pass if u.lr_discriminator_input == "high_pass" else (lambda image: image)
    adversarial = {"hr": (u.adversarial_hr_weight, d_hr, sr, y),
                   "lr": (u.adversarial_lr_weight, d_lr_net, lr_seen(fake_lr), lr_seen(x))}
    adversarial = {domain: a for domain, a in adversarial.items() if a[0] > 0}
    for domain, (weight, discriminator, fake, real) in adversarial.items():
        terms[f"adversarial_{domain}"] = adversarial_generator_loss(u.gan_type, discriminator, fake, real)
        loss = loss + weight * terms[f"adversarial_{domain}"]
    if u.identity_weight > 0:
        terms["identity"] = (run.net(imresize(y, scale=1 / config.scale))[0] - y).abs().mean()
        loss = loss + u.identity_weight * terms["identity"]
    if not torch.isfinite(loss):
        raise SrlabError(f"the loss became {loss.item()} at iteration {run.iteration}: lower --lr")
    backward_step(run.optimizer, loss, run.scaler, config.optim.grad_clip)
    if adversarial:
        for group in run.d_optimizer.param_groups:
            group["lr"] = d_lr
        d_loss = sum(adversarial_discriminator_loss(u.gan_type, discriminator, fake, real)
                     for _, discriminator, fake, real in adversarial.values())
        run.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        run.d_optimizer.step()
        terms["discriminator"] = d_loss
    if run.ema is not None:
        update_ema(run.ema, run.model, config.ema_decay)
    return loss, {name: value.detach() for name, value in terms.items()}
