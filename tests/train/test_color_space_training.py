"""Training in a colour space (``data.color_space``): a short run in each space writes weights that
`srlab eval` / ``create_model`` rebuild into the same wrapper; bad values and resumes in another space are
one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

import srlab
from conftest import run_cli, tiny_train_config
from srlab.errors import SrlabError
from srlab.models.color_space import ColorSpaceModel
from srlab.models.registry import spec_of
from srlab.train.config import apply_overrides, validate
from srlab.train.trainer import train

SPACES = ("rgb", "ycbcr", "y", "lab", "learned")


def _config(tiny_photos, out, space: str):
    # 4 photos x repeat 2 / batch 4 = 2 iterations
    config = tiny_train_config(tiny_photos, out, epochs=1)
    config.data.repeat = 2
    config.data.color_space = space
    return config


@pytest.mark.parametrize("space", SPACES)
def test_a_run_in_each_space_reloads_into_the_same_wrapper(space, tiny_photos, tmp_path, capsys):
    run = tmp_path / "run"
    result = train(_config(tiny_photos, run, space), progress=False)
    assert result.iterations == 2
    model = srlab.create_model(checkpoint=run / "best.safetensors")
    if space == "rgb":
        assert not isinstance(model, ColorSpaceModel) and "color_space" not in spec_of(model).args
    else:
        assert isinstance(model, ColorSpaceModel) and spec_of(model).args["color_space"] == space
    if space == "learned":  # the transform trained with the network and was saved with it
        assert not torch.equal(model.space.matrix, torch.eye(3))
    out = tmp_path / "scores.json"
    code, _, err = run_cli(capsys, "eval", "--checkpoint", run / "best.safetensors", "--data", tiny_photos["val"],
                           "--metrics", "psnr,ciede2000", "--json", out, "--quiet")
    assert code == 0, err
    (scores,) = json.loads(out.read_text())["results"]
    # eval rebuilt the model the run validated: the same PSNR-Y as the run's last validation
    assert scores["psnr_y"] == pytest.approx(result.last_psnr, abs=1e-9)


def test_a_bad_space_is_a_one_line_error_listing_the_choices(tiny_photos, tmp_path):
    config = tiny_train_config(tiny_photos, tmp_path / "run")
    apply_overrides(config, {"data": {"color_space": "hsv"}})
    with pytest.raises(SrlabError, match=r"^unknown data.color_space 'hsv': use one of rgb\|ycbcr\|y\|lab\|learned$"):
        validate(config)


def test_a_run_resumes_only_in_its_own_space(tiny_photos, tmp_path):
    train(_config(tiny_photos, tmp_path / "run", "lab"), progress=False)
    config = _config(tiny_photos, tmp_path / "run", "ycbcr")
    config.epochs = 2
    with pytest.raises(SrlabError, match="cannot resume .* with data.color_space 'ycbcr': the run was trained with "
                                         "data.color_space 'lab'"):
        train(config, resume=True, progress=False)


def test_a_run_in_a_space_warm_starts_from_rgb_weights_and_from_its_own(tiny_photos, tmp_path):
    train(_config(tiny_photos, tmp_path / "rgb", "rgb"), progress=False)
    rgb = srlab.create_model(checkpoint=tmp_path / "rgb" / "best.safetensors")
    config = _config(tiny_photos, tmp_path / "lab", "lab")
    config.init_from, config.optim.lr = str(tmp_path / "rgb" / "best.safetensors"), 1e-12
    train(config, progress=False)  # the RGB network's weights go into the wrapped network
    lab = srlab.create_model(checkpoint=tmp_path / "lab" / "best.safetensors")
    assert all(torch.allclose(v, lab.net.state_dict()[k], atol=1e-9) for k, v in rgb.state_dict().items())
    assert "kept the fresh init of 0: none" in (tmp_path / "lab" / "train.log").read_text()
    again = _config(tiny_photos, tmp_path / "lab2", "lab")
    again.init_from = str(tmp_path / "lab" / "best.safetensors")  # a wrapper's own weights: net.*
    train(again, progress=False)
    assert "kept the fresh init of 0: none" in (tmp_path / "lab2" / "train.log").read_text()
