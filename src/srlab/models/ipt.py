"""IPT: the Pre-Trained Image Processing Transformer.

Paper: Chen, Wang, Guo, Xu, Deng, Liu, Ma, Xu, Xu, Gao, "Pre-Trained Image Processing Transformer",
CVPR 2021. Official code: huawei-noah/Pretrained-IPT (Apache-2.0), ``model/ipt.py``,
``model/common.py``, ``model/__init__.py`` (``forward_chop``), ``option.py``.

One network serves several image-processing tasks: every task has its own convolutional *head*
(3x3 conv + two 5x5 residual blocks, 64 features) and *tail* (EDSR upsampler for its scale, 3x3 conv);
all tasks share the transformer *body*: the 48x48 feature map is cut into 256 patches of 3x3 (576-d
tokens, linear encoding + residual), a 12-layer pre-norm encoder (learned positional encoding added
once at its input) and a 12-layer pre-norm decoder whose queries carry a learned *task embedding*
(``body.query_embed``, one 256x576 map per query), then an MLP head (+ residual); the tokens are folded
back into the 48x48 map and added to the head's output.

Tasks (the official options ``--scale``, ``--denoise --sigma``, ``--derain``; the paper's six
pre-training tasks): ``sr2``, ``sr3``, ``sr4`` (super-resolution), ``denoise30``, ``denoise50``
(Gaussian noise sigma 30 / 50, scale 1) and ``derain`` (scale 1). ``tasks`` lists those a model holds,
in order (head/tail index i = the i-th task, like the official ``--scale 2+3+4`` with ``set_scale(i)``);
``"sr"`` (the default) means only the SR task of the registry scale, which is how the official
per-task test models and released checkpoints are built (``--scale S``: ``head.0``, ``tail.0``, one
query). ``forward(x, task=...)`` selects the task; the default is the SR task of ``scale``.
:meth:`IPT.freeze_except` leaves only one task's head and tail trainable (per-task fine-tuning).

Input and output are RGB in [0, 1]; the official network works on [0, 255] with a frozen MeanShift
(``sub_mean``/``add_mean``, DIV2K mean): forward multiplies by 255 and divides the result by 255.

The body is built for 48x48 inputs only (learned positions of 16x16 patches). Like the official test
(``forward_chop``), forward cuts any other input into 48x48 crops at a stride of 12 px, runs them in
batches and averages the crops' centres (12 px margins dropped except at the image border); inputs
smaller than 48 are reflect-padded (replicated where reflection is too short) and the output cropped.

Deviations from the official code:
* the tiling is a re-implementation of ``forward_chop``'s scheme (same crop size, stride and
  margins, uniform averaging of the overlapping centres), not its exact border bookkeeping, and it
  also accepts inputs smaller than 48 px;
* with one query (``num_queries=1``, the official default) every task uses that query; the official
  code indexes the query table by the task index and fails for a second task. With one query per
  task (``num_queries=len(tasks)``, the pre-training setup) task i uses query i;
* ``body.position_encoding.position_ids`` (a constant 0..255 index listed in official checkpoints) is
  kept as a persistent buffer so official state dicts load strictly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from srlab.layers.mean_shift import MeanShift
from srlab.layers.upsamplers import ProgressiveUpsampler
from srlab.models.registry import ModelInfo, register_model

TASK_SCALES = {"sr2": 2, "sr3": 3, "sr4": 4, "denoise30": 1, "denoise50": 1, "derain": 1}
RGB_RANGE = 255.0
PATCH = 48  # the official --patch_size: the size the body is built for
CHOP_STRIDE = 12  # official forward_chop: unfold stride shave/2 with shave = patch_size/2
CHOP_MARGIN = 12  # ... and the margin cropped from each crop before averaging
CHOP_BATCH = 64  # official --crop_batch_size


def _conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)


class ResBlock(nn.Module):
    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels, kernel_size), nn.ReLU(inplace=True), _conv(channels, channels, kernel_size)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer (sequence-first tensors, bias-free attention)."""

    def __init__(self, dim: int, num_heads: int, hidden: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads, bias=False)
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        nn.init.kaiming_uniform_(self.self_attn.in_proj_weight, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.self_attn(y, y, y, need_weights=False)[0]
        return x + self.linear2(F.relu(self.linear1(self.norm2(x))))


class DecoderLayer(nn.Module):
    """Pre-norm decoder layer; the task query embedding is added to the queries (and self-attention keys)."""

    def __init__(self, dim: int, num_heads: int, hidden: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads, bias=False)
        self.multihead_attn = nn.MultiheadAttention(dim, num_heads, bias=False)
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        q = y + query
        x = x + self.self_attn(q, q, y, need_weights=False)[0]
        y = self.norm2(x)
        x = x + self.multihead_attn(y + query, memory, memory, need_weights=False)[0]
        return x + self.linear2(F.relu(self.linear1(self.norm3(x))))


class Stack(nn.Module):
    """Holds the layers under ``layers.i`` (official ``TransformerEncoder``/``TransformerDecoder``)."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)


class LearnedPositionalEncoding(nn.Module):
    def __init__(self, length: int, dim: int) -> None:
        super().__init__()
        self.pe = nn.Embedding(length, dim)
        # A constant listed in the official state dict; persistent so official checkpoints load strictly.
        self.register_buffer("position_ids", torch.arange(length).expand((1, -1)))

    def forward(self) -> torch.Tensor:
        return self.pe(self.position_ids)  # (1, L, dim)


class VisionTransformer(nn.Module):
    """IPT's shared body on (B, C, 48, 48) features (official ``VisionTransformer``, default options)."""

    def __init__(
        self, *, img_dim: int, patch_dim: int, channels: int, num_heads: int, num_layers: int, num_queries: int
    ) -> None:
        super().__init__()
        self.img_dim = img_dim
        self.patch_dim = patch_dim
        dim = channels * patch_dim * patch_dim
        hidden = 4 * dim
        self.seq_length = (img_dim // patch_dim) ** 2
        self.embedding_dim = dim
        self.linear_encoding = nn.Linear(dim, dim)
        self.mlp_head = nn.Sequential(
            nn.Linear(dim, hidden), nn.Dropout(0.0), nn.ReLU(), nn.Linear(hidden, dim), nn.Dropout(0.0)
        )
        self.query_embed = nn.Embedding(num_queries, dim * self.seq_length)
        self.encoder = Stack([EncoderLayer(dim, num_heads, hidden) for _ in range(num_layers)])
        self.decoder = Stack([DecoderLayer(dim, num_heads, hidden) for _ in range(num_layers)])
        self.position_encoding = LearnedPositionalEncoding(self.seq_length, dim)

    def forward(self, x: torch.Tensor, query_idx: int) -> torch.Tensor:
        b = x.shape[0]
        p = self.patch_dim
        tokens = F.unfold(x, p, stride=p).permute(2, 0, 1)  # (L, B, dim), sequence first
        tokens = self.linear_encoding(tokens) + tokens
        query = self.query_embed.weight[query_idx].view(self.seq_length, 1, self.embedding_dim)
        pos = self.position_encoding().transpose(0, 1)  # (L, 1, dim)
        tokens = tokens + pos
        for layer in self.encoder.layers:
            tokens = layer(tokens)
        memory = tokens
        for layer in self.decoder.layers:
            tokens = layer(tokens, memory, query)
        tokens = self.mlp_head(tokens) + tokens
        return F.fold(tokens.permute(1, 2, 0), self.img_dim, p, stride=p).view(b, -1, self.img_dim, self.img_dim)


def _pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Reflect-pad bottom/right up to (height, width), replicating where reflection is too short."""
    while x.shape[-2] < height or x.shape[-1] < width:
        h, w = x.shape[-2:]
        ph, pw = min(height - h, h - 1), min(width - w, w - 1)
        if ph <= 0 and pw <= 0 and (h < height or w < width):  # a 1-pixel side cannot be reflected
            return F.pad(x, (0, max(0, width - w), 0, max(0, height - h)), mode="replicate")
        x = F.pad(x, (0, max(pw, 0), 0, max(ph, 0)), mode="reflect")
    return x


def _starts(length: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def forward_chop(
    x: torch.Tensor,
    fn,
    *,
    scale: int,
    patch: int = PATCH,
    stride: int = CHOP_STRIDE,
    margin: int = CHOP_MARGIN,
    batch: int = CHOP_BATCH,
) -> torch.Tensor:
    """Run ``fn`` (patch x patch -> patch*scale) over overlapping crops of ``x`` and blend them.

    Crops start every ``stride`` px (the last one flush with the border); each contributes its centre,
    ``margin`` px in from every side that is not the image border, and overlapping centres are
    averaged uniformly. An input of exactly patch x patch is a single call of ``fn``.
    """
    b, c, h, w = x.shape
    padded = _pad_to(x, max(h, patch), max(w, patch))
    ph, pw = padded.shape[-2:]
    boxes = [(top, left) for top in _starts(ph, patch, stride) for left in _starts(pw, patch, stride)]
    if len(boxes) == 1:
        return fn(padded)[..., : h * scale, : w * scale]
    out = None
    weight = padded.new_zeros(1, 1, ph * scale, pw * scale)
    for i in range(0, len(boxes), batch):
        chunk = boxes[i : i + batch]
        crops = torch.cat([padded[..., t : t + patch, l : l + patch] for t, l in chunk], dim=0)
        ys = fn(crops).split(b, dim=0)
        if out is None:
            out = padded.new_zeros(b, ys[0].shape[1], ph * scale, pw * scale)
        for (t, l), y in zip(chunk, ys):
            t0 = 0 if t == 0 else margin
            l0 = 0 if l == 0 else margin
            t1 = patch if t + patch == ph else patch - margin
            l1 = patch if l + patch == pw else patch - margin
            rows = slice((t + t0) * scale, (t + t1) * scale)
            cols = slice((l + l0) * scale, (l + l1) * scale)
            out[..., rows, cols] += y[..., t0 * scale : t1 * scale, l0 * scale : l1 * scale]
            weight[..., rows, cols] += 1
    return (out / weight)[..., : h * scale, : w * scale]


def parse_tasks(tasks: str, scale: int) -> tuple[str, ...]:
    if tasks == "sr":
        return (f"sr{scale}",)
    if tasks == "all":
        return tuple(TASK_SCALES)
    names = tuple(tasks.split("+"))
    unknown = [t for t in names if t not in TASK_SCALES]
    if unknown or len(set(names)) != len(names):
        raise ValueError(
            f"tasks must be 'sr', 'all' or distinct '+'-joined names of {', '.join(TASK_SCALES)}, got {tasks!r}"
        )
    return names


class IPT(nn.Module):
    def __init__(
        self,
        *,
        scale: int,
        tasks: tuple[str, ...],
        num_queries: int = 1,
        channels: int = 64,
        patch_dim: int = 3,
        num_heads: int = 12,
        num_layers: int = 12,
    ) -> None:
        super().__init__()
        if f"sr{scale}" not in tasks:
            raise ValueError(f"tasks {'+'.join(tasks)} lack the SR task of scale {scale} (sr{scale})")
        if num_queries not in (1, len(tasks)):
            raise ValueError(f"num_queries must be 1 or the number of tasks ({len(tasks)}), got {num_queries}")
        self.scale = scale
        self.tasks = tasks
        self.default_task = f"sr{scale}"
        self.sub_mean = MeanShift(RGB_RANGE, sign=-1)
        self.add_mean = MeanShift(RGB_RANGE, sign=1)
        self.head = nn.ModuleList(
            nn.Sequential(_conv(3, channels, 3), ResBlock(channels, 5), ResBlock(channels, 5)) for _ in tasks
        )
        self.body = VisionTransformer(
            img_dim=PATCH,
            patch_dim=patch_dim,
            channels=channels,
            num_heads=num_heads,
            num_layers=num_layers,
            num_queries=num_queries,
        )
        self.tail = nn.ModuleList(
            nn.Sequential(ProgressiveUpsampler(channels, TASK_SCALES[t]), _conv(channels, 3, 3)) for t in tasks
        )

    def task_index(self, task: str | None) -> int:
        task = self.default_task if task is None else task
        if task not in self.tasks:
            raise ValueError(f"task {task!r} is not one of this model's tasks ({', '.join(self.tasks)})")
        return self.tasks.index(task)

    def _forward_patch(self, x: torch.Tensor, idx: int) -> torch.Tensor:
        """The official ``ipt.forward`` on [0, 255] crops of exactly 48x48."""
        x = self.head[idx](self.sub_mean(x))
        query_idx = idx if self.body.query_embed.num_embeddings > 1 else 0
        res = self.body(x, query_idx) + x
        return self.add_mean(self.tail[idx](res))

    def forward(self, x: torch.Tensor, task: str | None = None) -> torch.Tensor:
        idx = self.task_index(task)
        scale = TASK_SCALES[self.tasks[idx]]
        return forward_chop(x * RGB_RANGE, lambda crops: self._forward_patch(crops, idx), scale=scale) / RGB_RANGE

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        idx = self.task_index(task)
        return [*self.head[idx].parameters(), *self.tail[idx].parameters()]

    def freeze_except(self, task: str) -> IPT:
        """Leave only ``task``'s head and tail trainable (fine-tuning one task on the shared body)."""
        keep = {id(p) for p in self.task_parameters(task)}
        for p in self.parameters():
            p.requires_grad = id(p) in keep
        return self

    def unfreeze(self) -> IPT:
        """Make everything trainable again except the fixed MeanShift layers."""
        for p in self.parameters():
            p.requires_grad = True
        for p in (*self.sub_mean.parameters(), *self.add_mean.parameters()):
            p.requires_grad = False
        return self


@register_model(
    ModelInfo(
        paper="Chen et al., Pre-Trained Image Processing Transformer (IPT), CVPR 2021",
        origin="https://github.com/huawei-noah/Pretrained-IPT",
        licence="Apache-2.0",
        scales=(2, 3, 4),
        # forward tiles any size into the 48x48 crops the body needs (official forward_chop).
        size_multiple=1,
        receptive_radius=PATCH,  # an output pixel depends on (at most) its 48x48 crop
        half_precision_safe=False,  # not verified
    )
)
def ipt(*, scale: int, tasks: str = "sr", num_queries: int = 1, num_layers: int = 12) -> IPT:
    """IPT (64 features, 12+12 layers, 12 heads). ``tasks``: ``"sr"`` = the SR task of ``scale`` only
    (the official per-task models and checkpoints); ``"all"`` = the six pre-training tasks; or names
    joined by ``+`` (``"sr2+sr3+sr4"`` = official ``--scale 2+3+4``). ``num_queries``: 1 (official
    default, shared) or one per task."""
    return IPT(scale=scale, tasks=parse_tasks(tasks, scale), num_queries=num_queries, num_layers=num_layers)
