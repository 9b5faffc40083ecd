"""SMSR: sparse mask super-resolution network.

Paper: Wang et al., "Exploring Sparsity in Image Super-Resolution for Efficient Inference", CVPR 2021.
Official repository: LongguangWang/SMSR (no licence stated). This is srlab's own implementation written
from the paper and the structure of the official ``model/smsr.py``; module structure and parameter
names equal the official ones, so the released x2 checkpoint (``model_1000.pt``, a plain state dict)
loads with strict key matching.

Structure: MeanShift, an EDSR-like head (3x3 conv, ReLU, 3x3 conv), five sparse mask modules (SMMs),
a collect stage (1x1 conv over the five SMM outputs, ReLU, 3x3 conv) with a long skip, a 3x3 conv +
PixelShuffle tail, a global bicubic skip (PyTorch bicubic of the mean-subtracted input) and MeanShift
back. Each SMM predicts a two-class spatial mask (``spa_mask``: 3x3 conv, ReLU, 2x2 average pool, 3x3
conv, ReLU, stride-2 transposed conv) and holds learnable channel-mask logits (``body.ch_mask``, shape
(1, C, 4, 2)) that split every output channel of its four 3x3 convs into a *dense* channel (computed
everywhere) or a *sparse* channel (computed only at positions the spatial mask marks as important).
Dense channels read sparse ones only at masked positions, as in the paper. The four layer outputs
are fused by a 1x1 conv (``body.collect``) and gated by RCAN channel attention (``ca``).

Modes:
  * training (``model.train()``): masks are relaxed with Gumbel softmax at temperature ``tau``
    (``model.set_tau``) and the network is computed densely; the forward returns ``(sr, {"sparsity":
    maps})`` as the official one returns ``[sr, sparsity]``: per SMM and image, the soft fraction of
    computed (channel, position) outputs, (5 B, 4 C, H, W). ``srlab train`` hands the dict to the losses.
  * inference (``model.eval()``): hard masks (spatial: class 1 logit > class 0; channel:
    ``softmax(ch_mask).round()``). By default (``model.sparse_inference = True``) the SMM bodies run
    the sparse convolution: dense->dense channels as an ordinary conv, and everything that involves
    sparse channels only at the gathered active positions (dense->sparse 3x3 columns gathered from the
    padded dense map, sparse->dense/sparse 3x3 columns gathered through a position-index map, sparse
    results scattered back into the dense map). ``sparse_inference = False`` computes the same hard-mask
    network densely (the reference the sparse path is tested against).

Training recipe (official ``trainer.py``; ``configs/smsr_x2.yaml``): ``loss_SR + lambda * sparsity.mean()``
with L1 as ``loss_SR`` and ``lambda = min((epoch - 1) / 50, 1) * 0.1``, i.e. the ``aux_penalty`` loss
(``key: sparsity``, ``ramp_epochs: 50``) at weight 0.1, and ``tau = max(1 - (epoch - 1) / 500, 0.4)``
per epoch. srlab's trainer has no per-epoch hook for models, so the recipe sets ``step: scheduled``
(srlab.train.scheduled_step), which calls :meth:`SMSR.set_training_epoch` and the loss's ramp with the
epoch being trained (counted from 1) before every step; resumed runs continue the schedule.

Deviations from the official code (none changes the released model's output):
  * input and output are RGB in [0, 1]; the official network works on [0, 255], so forward scales by
    255 inside (no extra parameters).
  * the official sparse path handles one image at a time; here a batch is processed image by image.
    Kernels are split on every eval forward instead of in a ``_prepare`` step after ``eval()``, so
    changing weights in eval mode needs no extra call.
  * the architecture needs an even LR size (2x2 average pool, then a stride-2 transposed conv). The
    model declares ``size_multiple=2``; forward reflect-pads odd sizes (bottom/right) itself and crops
    the output, and the generic inference path leaves that to it. The official test instead crops
    the LR image to even size (and HR to twice that), which changes the scored images of odd-sized LR
    inputs (e.g. Set14 x2 comic, flowers, zebra).
  * the official trainer updates tau through a ``_set_tau`` method that no module defines (they define
    ``_update_tau``), so its tau stays 1 throughout training; here the schedule does reach the masks.
    ``tau_floor: 1.0`` (the schedule's lower bound) keeps tau at 1 as the released model was trained.
  * Gumbel noise uses ``rand`` clamped away from 0 instead of re-drawing until no zero occurs.
  * training gates the input of SMB layer i with layer i - 1's channel mask (which of its input
    channels are dense or sparse), as the official sparse inference and the eval-mode dense path do;
    the official training forward gates it with layer i's own mask, so it trains a slightly different
    network from the one it runs. ``training_gating="official"`` puts that gating back (training only;
    inference is the same either way): srlab's training forward then equals the official one on the
    same weights and Gumbel draws (checked once: SR within 1.5e-5 of 255, the sparsity maps identical).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.attention import CALayer
from srlab.layers.mean_shift import MeanShift
from srlab.layers.padding import pad_to_multiple
from srlab.layers.upsamplers import image_head
from srlab.models.registry import ModelInfo, register_model

RGB_RANGE = 255.0
TRAINING_GATINGS = ("consistent", "official")


def gumbel_softmax(logits: torch.Tensor, dim: int, tau: float) -> torch.Tensor:
    """Softmax of logits perturbed by Gumbel(0, 1) noise, at temperature ``tau``."""
    uniform = torch.rand_like(logits).clamp_min(torch.finfo(logits.dtype).tiny)
    gumbel = -torch.log(-torch.log(uniform))
    return ((logits + gumbel) / tau).softmax(dim)


def _gather_3x3(padded: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """3x3 neighbourhood columns of a (C, H+2, W+2) map at (rows, cols) of the unpadded map: (C*9, N),
    ordered (channel, ky, kx) like a flattened conv kernel."""
    taps = [padded[:, rows + dy, cols + dx] for dy in range(3) for dx in range(3)]
    return torch.stack(taps, dim=1).reshape(padded.shape[0] * 9, -1)


class SMB(nn.Module):
    """Sparse mask block: ``n_layers`` bias-free 3x3 convs with per-channel dense/sparse split and a 1x1
    collect conv over all layer outputs."""

    def __init__(self, in_channels: int, out_channels: int, n_layers: int = 4) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.n_layers = n_layers
        self.tau = 1.0
        self.relu = nn.ReLU(inplace=True)
        # Channel-mask logits: [..., 0] dense, [..., 1] sparse, per output channel and layer.
        self.ch_mask = nn.Parameter(torch.rand(1, out_channels, n_layers, 2))
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
            *(nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False) for _ in range(n_layers - 1)),
        )
        self.collect = nn.Conv2d(out_channels * n_layers, out_channels, 1)

    def hard_channel_mask(self) -> torch.Tensor:
        """(1, C, L, 2) one-hot (dense, sparse) channel assignment used at inference."""
        return self.ch_mask.softmax(3).round()

    def forward_masked(
        self, x: torch.Tensor, spa_mask: torch.Tensor, ch_mask: torch.Tensor, *, own_mask_gating: bool = False
    ) -> torch.Tensor:
        """Dense computation with (soft or hard) masks: spa_mask (B, 1, H, W), ch_mask (1, C, L, 2).
        ``own_mask_gating``: layer i's input gated by layer i's channel mask (the official training
        forward) instead of layer i - 1's (which of its input channels are dense or sparse)."""
        outputs = []
        fea = x
        for i, conv in enumerate(self.body):
            dense, sparse = ch_mask[:, :, i : i + 1, :1], ch_mask[:, :, i : i + 1, 1:]
            if i == 0:
                fea = conv(fea)
                fea = fea * sparse * spa_mask + fea * dense
            else:
                gate = i if own_mask_gating else i - 1
                prev_dense, prev_sparse = ch_mask[:, :, gate : gate + 1, :1], ch_mask[:, :, gate : gate + 1, 1:]
                from_dense = conv(fea * prev_dense)
                from_sparse = conv(fea * prev_sparse)
                # Dense outputs see dense inputs everywhere and sparse inputs at masked positions;
                # sparse outputs exist only at masked positions.
                fea = (
                    from_dense * sparse * spa_mask
                    + from_dense * dense
                    + from_sparse * sparse * spa_mask
                    + from_sparse * dense * spa_mask
                )
            fea = self.relu(fea)
            outputs.append(fea)
        return self.collect(torch.cat(outputs, 1))

    def forward_all_dense(self, x: torch.Tensor) -> torch.Tensor:
        """Every channel dense at every position: the plain network, what the paper's dense MACs count."""
        outputs = []
        fea = x
        for conv in self.body:
            fea = self.relu(conv(fea))
            outputs.append(fea)
        return self.collect(torch.cat(outputs, 1))

    def forward_sparse(self, x: torch.Tensor, spa_mask: torch.Tensor) -> torch.Tensor:
        """Sparse inference for a batch: computes sparse channels only at masked positions."""
        ch_mask = self.hard_channel_mask()[0]  # (C, L, 2)
        return torch.cat([self._sparse_one(x[b], spa_mask[b, 0] > 0.5, ch_mask) for b in range(x.shape[0])])

    def _sparse_one(self, x: torch.Tensor, mask: torch.Tensor, ch_mask: torch.Tensor) -> torch.Tensor:
        height, width = mask.shape
        rows, cols = torch.nonzero(mask, as_tuple=True)
        count = rows.numel()
        # Position index map (padded by one): 0 = inactive / outside, k + 1 = k-th active position.
        index_map = torch.zeros(height + 2, width + 2, dtype=torch.long, device=x.device)
        index_map[rows + 1, cols + 1] = torch.arange(1, count + 1, device=x.device)
        neighbours = torch.stack(
            [index_map[rows + dy, cols + dx] for dy in range(3) for dx in range(3)]
        )  # (9, N)

        def gather_sparse(fea_sparse: torch.Tensor) -> torch.Tensor:
            padded = F.pad(fea_sparse, (1, 0))  # column 0 holds the zeros of inactive neighbours
            return padded[:, neighbours].reshape(fea_sparse.shape[0] * 9, count)

        dense_outputs, sparse_outputs, dense_cols, sparse_cols = [], [], [], []
        fea_dense, fea_sparse = x, x.new_zeros(0, count)
        in_dense = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        in_sparse = ~in_dense
        for i, conv in enumerate(self.body):
            out_dense, out_sparse = ch_mask[:, i, 0] == 1, ch_mask[:, i, 1] == 1
            weight = conv.weight
            w_dd = weight[out_dense][:, in_dense]
            w_ds = weight[out_sparse][:, in_dense]
            w_sd = weight[out_dense][:, in_sparse]
            w_ss = weight[out_sparse][:, in_sparse]
            # dense -> dense: an ordinary convolution over the whole map.
            new_dense = F.conv2d(fea_dense[None], w_dd, padding=1)[0] if w_dd.numel() else (
                x.new_zeros(w_dd.shape[0], height, width)
            )
            new_sparse = x.new_zeros(w_ds.shape[0], count)
            if count:
                if w_ds.numel():
                    # dense -> sparse: 3x3 columns of the dense map at the active positions.
                    cols_dense = _gather_3x3(F.pad(fea_dense, (1, 1, 1, 1)), rows, cols)
                    new_sparse = new_sparse + w_ds.reshape(w_ds.shape[0], -1) @ cols_dense
                if fea_sparse.shape[0]:
                    cols_sparse = gather_sparse(fea_sparse)
                    if w_ss.numel():
                        new_sparse = new_sparse + w_ss.reshape(w_ss.shape[0], -1) @ cols_sparse
                    if w_sd.numel():
                        # sparse -> dense: added into the dense map at the active positions only.
                        update = w_sd.reshape(w_sd.shape[0], -1) @ cols_sparse
                        new_dense[:, rows, cols] = new_dense[:, rows, cols] + update
            fea_dense, fea_sparse = self.relu(new_dense), self.relu(new_sparse)
            dense_outputs.append(fea_dense)
            sparse_outputs.append(fea_sparse)
            offset = i * self.out_channels
            dense_cols.append(torch.nonzero(out_dense).flatten() + offset)
            sparse_cols.append(torch.nonzero(out_sparse).flatten() + offset)
            in_dense, in_sparse = out_dense, out_sparse

        # 1x1 collect: dense columns as a conv, sparse columns added at the active positions.
        weight = self.collect.weight[:, :, 0, 0]
        all_dense = torch.cat(dense_outputs)
        out = torch.einsum("oc,chw->ohw", weight[:, torch.cat(dense_cols)], all_dense)
        out = out + self.collect.bias.view(-1, 1, 1)
        all_sparse = torch.cat(sparse_outputs)
        if count and all_sparse.shape[0]:
            update = weight[:, torch.cat(sparse_cols)] @ all_sparse
            out[:, rows, cols] = out[:, rows, cols] + update
        return out[None]


class SMM(nn.Module):
    """Sparse mask module: spatial-mask branch, sparse mask block, channel attention, residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.spa_mask = nn.Sequential(
            nn.Conv2d(channels, channels // 4, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(2),
            nn.Conv2d(channels // 4, channels // 4, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(channels // 4, 2, 3, 2, 1, output_padding=1),
        )
        self.body = SMB(channels, channels, n_layers=4)
        self.ca = CALayer(channels)
        self.tau = 1.0
        self.official_training_gating = False  # see SMSR's training_gating
        self.sparse_inference = True
        self.last_spatial_mask: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (output, sparsity map): the soft fraction of computed (channel, position) locations
        in training, the hard one at inference."""
        logits = self.spa_mask(x)
        if self.training:
            spa = gumbel_softmax(logits, 1, self.tau)[:, 1:]
            ch = gumbel_softmax(self.body.ch_mask, 3, self.tau)
            out = self.body.forward_masked(x, spa, ch, own_mask_gating=self.official_training_gating)
        else:
            spa = (logits[:, 1:] > logits[:, :1]).to(x.dtype)
            self.last_spatial_mask = spa.detach()
            ch = self.body.hard_channel_mask()
            if x.device.type == "meta":
                # Shapes without data (srlab.profile's MAC count): masks are unknown, so count the
                # dense network, the paper's bracketed figure; mask_statistics() gives the sparse share.
                out = self.body.forward_all_dense(x)
            elif self.sparse_inference:
                out = self.body.forward_sparse(x, spa)
            else:
                out = self.body.forward_masked(x, spa, ch)
        out = self.ca(out) + x
        sparse_ch, dense_ch = ch[..., 1].reshape(1, -1, 1, 1), ch[..., 0].reshape(1, -1, 1, 1)
        return out, (spa, sparse_ch, dense_ch)


class SMSR(nn.Module):
    def __init__(
        self, *, scale: int, n_feats: int = 64, n_modules: int = 5, tau_floor: float = 0.4,
        upsampler: str = "subpixel", training_gating: str = "consistent",
    ) -> None:
        super().__init__()
        if not 0 < tau_floor <= 1:
            raise ValueError(f"tau_floor (the lowest Gumbel-softmax temperature) must be in (0, 1], got {tau_floor}")
        if training_gating not in TRAINING_GATINGS:
            raise ValueError(f"training_gating must be one of {', '.join(TRAINING_GATINGS)}, got {training_gating!r}")
        self.scale = scale
        self.n_modules = n_modules
        self.tau_floor = tau_floor
        # Registration order follows the official module, so state_dict() lists keys in its order.
        self.sub_mean = MeanShift(RGB_RANGE, sign=-1)
        self.collect = nn.Sequential(
            nn.Conv2d(n_feats * n_modules, n_feats, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
        )
        self.add_mean = MeanShift(RGB_RANGE, sign=1)
        self.head = nn.Sequential(
            nn.Conv2d(3, n_feats, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(n_feats, n_feats, 3, padding=1)
        )
        self.body = nn.Sequential(*(SMM(n_feats) for _ in range(n_modules)))
        for module in self.body:
            module.official_training_gating = training_gating == "official"
        self.tail = image_head(upsampler, in_channels=n_feats, scale=scale)

    @property
    def sparse_inference(self) -> bool:
        return all(m.sparse_inference for m in self.body)

    @sparse_inference.setter
    def sparse_inference(self, value: bool) -> None:
        for m in self.body:
            m.sparse_inference = bool(value)

    def set_tau(self, tau: float) -> None:
        """Gumbel-softmax temperature of all masks."""
        for m in self.body:
            m.tau = tau
            m.body.tau = tau

    def set_training_epoch(self, epoch: int) -> None:
        """The official schedule for the epoch being trained (from 1): tau = max(1 - (epoch - 1) / 500, floor)."""
        self.set_tau(max(1 - (epoch - 1) / 500, self.tau_floor))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The SR image; in training ``(sr, {"sparsity": maps})`` (see the module docstring)."""
        height, width = x.shape[-2:]
        x0 = self.sub_mean(pad_to_multiple(x, 2, "reflect") * RGB_RANGE)
        shallow = self.head(x0)
        features, sparsity = [], []
        fea = shallow
        for module in self.body:
            fea, (spa, sparse_ch, dense_ch) = module(fea)
            features.append(fea)
            if self.training:
                sparsity.append(spa * sparse_ch + torch.ones_like(spa) * dense_ch)
        deep = self.collect(torch.cat(features, 1)) + shallow
        upsampled = F.interpolate(x0, scale_factor=self.scale, mode="bicubic", align_corners=False)
        out = self.add_mean(self.tail(deep) + upsampled) / RGB_RANGE
        out = out[..., : height * self.scale, : width * self.scale]
        return (out, {"sparsity": torch.cat(sparsity)}) if self.training else out


@torch.no_grad()
def mask_statistics(model: SMSR) -> dict[str, float]:
    """Mask statistics of the last eval forward, averaged over the SMMs (and the batch):

    ``spatial``: fraction of positions marked important (where sparse channels are computed);
    ``sparse_channels``: fraction of the 3x3-conv output channels of the SMBs that are sparse;
    ``computed``: fraction of the SMB 3x3-conv outputs (channel, position) that are computed;
    ``macs``: fraction of the SMB 3x3-conv multiply-adds that the sparse path computes (a product of an
    input and an output channel is skipped at an unmarked position unless both channels are dense).
    """
    spatial, channels, computed, macs = [], [], [], []
    for module in model.body:
        if module.last_spatial_mask is None:
            raise ValueError("run the model in eval mode first")
        spa = module.last_spatial_mask.mean().item()
        hard = module.body.hard_channel_mask()[0]  # (C, L, 2)
        dense = hard[..., 0].mean(0).tolist()  # per layer
        sparse = hard[..., 1].mean().item()
        spatial.append(spa)
        channels.append(sparse)
        computed.append(1 - sparse + sparse * spa)
        dense_in = [1.0] + dense[:-1]
        both = [a * b for a, b in zip(dense_in, dense)]
        macs.append(sum(f + (1 - f) * spa for f in both) / len(both))
    n = len(spatial)
    return {
        "spatial": sum(spatial) / n,
        "sparse_channels": sum(channels) / n,
        "computed": sum(computed) / n,
        "macs": sum(macs) / n,
    }


@register_model(
    ModelInfo(
        adaptive="smsr",
        paper="Wang et al., 'Exploring Sparsity in Image Super-Resolution for Efficient Inference', CVPR 2021",
        origin="https://github.com/LongguangWang/SMSR",
        licence="unknown",
        scales=(2, 3, 4),
        # 2x2 average pool then a stride-2 transposed conv in every spatial-mask branch.
        size_multiple=2,
        pad_mode="inside",
        # head 2 + 5 SMMs x (4 convs, mask branch ~7) + collect 1 + tail 1 + bicubic 2; channel
        # attention is global, so no radius is exact.
        receptive_radius=64,
        reparameterizable=False,
        # Features live in [0, 255]; the official code runs in float32 and half precision is unverified.
        half_precision_safe=False,
        # The paper's 985K/993K/1006K leave out the channel-mask logits (and the frozen MeanShift).
        uncounted_parameters=("ch_mask",),
    )
)
def smsr(
    *, scale: int, n_feats: int = 64, tau_floor: float = 0.4, upsampler: str = "subpixel",
    training_gating: str = "consistent",
) -> SMSR:
    """SMSR (64 features, 5 SMMs of 4 sparse 3x3 convs); ``tau_floor``: the temperature schedule's floor;
    ``training_gating``: "consistent" (train the network that runs) or "official" (the official training
    forward's gating, see the module docstring)."""
    return SMSR(scale=scale, n_feats=n_feats, tau_floor=tau_floor, upsampler=upsampler, training_gating=training_gating)
