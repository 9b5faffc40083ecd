"""The registry of training step kinds and the routing outputs (``aux``) a model hands to the losses."""

import pytest
import torch
from torch import nn

from srlab.errors import SrlabError
from srlab.train.config import TrainConfig
from srlab.train.stages import TrainNet
from srlab.train.steps import register_step, step_names
from srlab.train.trainer import train


def test_supervised_is_the_default_step_and_an_unknown_one_is_refused(tmp_path):
    assert TrainConfig().step == "supervised" and "supervised" in step_names()
    config = TrainConfig(step="sandwhich", out=str(tmp_path / "run"))
    with pytest.raises(SrlabError, match="unknown training step 'sandwhich': set step to one of .*supervised"):
        train(config, progress=False)


def test_a_step_name_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        register_step("supervised")(lambda *a, **k: None)


class _Routing(nn.Module):
    def forward(self, x):
        probs = torch.softmax(x.mean(dim=(2, 3)), dim=1)
        return x.repeat_interleave(2, -1).repeat_interleave(2, -2), {"class_probs": probs}


def test_a_training_forward_that_returns_aux_hands_it_to_the_losses():
    lr = torch.rand(2, 3, 4, 4)
    sr, uncertainty, aux = TrainNet(_Routing())(lr)
    assert sr.shape == (2, 3, 8, 8) and uncertainty is None
    assert set(aux) == {"class_probs"} and aux["class_probs"].shape == (2, 3)
    plain_sr, _, plain_aux = TrainNet(nn.Upsample(scale_factor=2))(lr)
    assert plain_aux == {} and plain_sr.shape == (2, 3, 8, 8)
