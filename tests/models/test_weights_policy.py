"""One policy for which weights a model uses (srlab.models.create.model_with_weights), shared by
``srlab eval`` / ``upscale`` (through cli.common), ``srlab profile`` and ``srlab benchmark``:
a checkpoint given > srlab's bundled weights (default hyper-parameters) > none needed (bicubic) >
a fresh initialisation where allowed (profile) > one error naming the fix."""

from __future__ import annotations

import pytest
import torch

from srlab.cli.main import main
from srlab.errors import SrlabError
from srlab.models import build_model
from srlab.models.create import (
    BUNDLED, DEFAULT_MODEL, NO_PARAMETERS, RANDOM_INIT, bundled_weights, create_model, list_bundled,
    model_with_weights,
)
from srlab.models.weights import save_weights

pytestmark = pytest.mark.skipif(not list_bundled(), reason="no bundled weights in this checkout")


def test_a_checkpoint_given_wins(tmp_path):
    torch.manual_seed(3)
    trained = build_model("rdsr_s", scale=2)
    save_weights(tmp_path / "w.safetensors", trained)
    model, source = model_with_weights("rdsr_s", scale=2, checkpoint=tmp_path / "w.safetensors")
    assert source == str(tmp_path / "w.safetensors") and not model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in trained.state_dict().items())


def test_bundled_weights_serve_the_default_hyper_parameters():
    model, source = model_with_weights(scale=2)  # the default model
    assert source == BUNDLED and model.srlab_spec.name == DEFAULT_MODEL
    defaults = dict(model.srlab_spec.args)
    assert model_with_weights(DEFAULT_MODEL, scale=3, args=defaults)[1] == BUNDLED  # the defaults, spelled out
    reference = create_model(checkpoint=bundled_weights(DEFAULT_MODEL, 2))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in reference.state_dict().items())


def test_no_weights_needed_fresh_where_allowed_else_one_error():
    assert model_with_weights("bicubic", scale=4)[1] == NO_PARAMETERS
    assert model_with_weights("rdsr", scale=2, fresh=True)[1] == RANDOM_INIT
    assert model_with_weights("rdsr_s", scale=2, args={"channels": 16}, fresh=True)[1] == RANDOM_INIT
    with pytest.raises(SrlabError, match=r"model 'rdsr' x2 has no weights \(srlab bundles: .*rdsr_s x2.*\): "
                                         r"pass --checkpoint FILE with weights from `srlab train`"):
        model_with_weights("rdsr", scale=2)
    with pytest.raises(SrlabError, match=r"bundled rdsr_s x2 weights are for its default hyper-parameters: "
                                         r"drop --model_arg or pass --checkpoint FILE"):
        model_with_weights("rdsr_s", scale=2, args={"channels": 16})
    with pytest.raises(SrlabError, match=r"no scale given: pass --scale S \(or --checkpoint FILE"):
        model_with_weights("rdsr_s")


def test_every_command_follows_the_policy(capsys, tiny_photos):
    """The same question gets the same answer (and the same error) from eval and benchmark (profile: the
    same, with a fresh initialisation allowed, tests/cli/test_profile_cli.py)."""
    from srlab.report import load_benchmark_model

    assert load_benchmark_model("rdsr_s", 2, args={"channels": 32})[1] == BUNDLED
    with pytest.raises(SrlabError, match="drop --model_arg rdsr_s:... or pass --checkpoint rdsr_s=FILE"):
        load_benchmark_model("rdsr_s", 2, args={"channels": 16})
    capsys.readouterr()
    assert main(["eval", "--model", "rdsr_s", "--scale", "2", "--model_arg", "channels=16",
                 "--data", str(tiny_photos["val"])]) == 2
    assert "drop --model_arg or pass --checkpoint FILE" in capsys.readouterr().err
