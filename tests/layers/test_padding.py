import pytest
import torch
import torch.nn.functional as F

from srlab.layers.padding import pad_to_multiple
from srlab.models.registry import ModelInfo


def test_pads_bottom_right_to_the_multiple_in_the_given_mode():
    x = torch.rand(1, 3, 10, 13)
    assert pad_to_multiple(x, 8).shape[-2:] == (16, 16)
    assert torch.equal(pad_to_multiple(x, 8, "reflect"), F.pad(x, (0, 3, 0, 6), mode="reflect"))
    assert torch.equal(pad_to_multiple(x, 8, "replicate"), F.pad(x, (0, 3, 0, 6), mode="replicate"))
    assert torch.equal(pad_to_multiple(x, 8, "zeros"), F.pad(x, (0, 3, 0, 6)))
    assert pad_to_multiple(x[..., :8, :9], 8).shape[-2:] == (8, 16)


def test_nothing_to_pad_returns_the_input_itself():
    x = torch.rand(3, 16, 24)
    assert pad_to_multiple(x, 8) is x


def test_reflection_too_short_for_the_pad_replicates():
    x = torch.rand(1, 3, 3, 9)  # reflecting 3 rows by 5 is impossible
    assert torch.equal(pad_to_multiple(x, 8, "reflect"), F.pad(x, (0, 7, 0, 5), mode="replicate"))


def test_min_size_rounds_up_to_the_multiple():
    assert pad_to_multiple(torch.rand(1, 3, 9, 30), 8, "zeros", min_size=15).shape[-2:] == (16, 32)


def test_unknown_modes_are_rejected():
    with pytest.raises(ValueError, match="pad mode must be one of reflect, replicate, zeros"):
        pad_to_multiple(torch.rand(1, 3, 5, 5), 4, "circular")
    with pytest.raises(ValueError, match="pad_mode must be one of inside, reflect"):
        ModelInfo(paper="x", pad_mode="mirror")
