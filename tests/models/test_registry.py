import pytest
import torch

import srlab
from srlab.errors import SrlabError
from srlab.models import build_model, list_models, model_info, register_model
from srlab.models.registry import ModelInfo, spec_of


def test_list_models_has_rdsr_variants_and_bicubic():
    names = srlab.list_models()
    assert {"rdsr", "rdsr_s", "bicubic"} <= set(names)
    assert names == sorted(names)


def test_create_model_records_its_spec():
    model = srlab.create_model("rdsr_s", scale=3)
    spec = spec_of(model)
    assert (spec.name, spec.scale) == ("rdsr_s", 3)
    assert spec.args == {"channels": 32, "num_blocks": 4, "ca_reduction": 8, "init": "bicubic", "upsampler": "subpixel",
                         "norm": "none", "attention": "ca", "spatial_attention": "esa", "block": "distill"}
    assert spec.info.size_multiple == 6


def test_derived_metadata_is_computed_from_the_hyper_parameters_the_model_is_built_with():
    info = ModelInfo(paper="x", size_multiple=lambda a: a["window"], receptive_radius=lambda a: 3 * a["window"])
    resolved = info.resolve({"window": 4})
    assert (resolved.size_multiple, resolved.receptive_radius, resolved.paper) == (4, 12, "x")
    default, deep = build_model("rdsr_s", scale=2), build_model("rdsr_s", scale=2, args={"num_blocks": 10})
    assert spec_of(deep).info.receptive_radius > spec_of(default).info.receptive_radius
    assert spec_of(default).info == model_info("rdsr_s")


def test_hyper_parameter_overrides_and_typos():
    model = build_model("rdsr_s", scale=2, args={"channels": 16})
    assert spec_of(model).args["channels"] == 16
    with pytest.raises(SrlabError, match="no hyper-parameter 'chanels'"):
        build_model("rdsr_s", scale=2, args={"chanels": 16})


def test_unknown_model_and_unsupported_scale_are_one_line_errors():
    with pytest.raises(SrlabError, match="unknown model 'rdsr_xl'.*srlab models") as e:
        srlab.create_model("rdsr_xl", scale=2)
    assert "\n" not in str(e.value)
    with pytest.raises(SrlabError, match="does not support scale 5"):
        srlab.create_model("rdsr", scale=5)


def test_factories_must_be_keyword_only():
    with pytest.raises(TypeError, match="keyword-only"):
        @register_model(ModelInfo(paper="x"))
        def positional_model(scale):  # pragma: no cover - rejected at registration
            return torch.nn.Identity()
    assert "positional_model" not in list_models()


def test_every_model_declares_metadata():
    for name in list_models():
        info = model_info(name)
        assert info.paper and info.scales and info.size_multiple >= 1 and info.receptive_radius > 0
        assert build_model(name, scale=info.scales[0]).scale == info.scales[0]


@pytest.mark.parametrize(("args", "message"), [
    ({"channels": "wide"}, "must be int"), ({"channels": 0}, "must be >= 1"), ({"ca_reduction": 0}, "must be >= 1"),
])
def test_bad_hyper_parameter_values(args, message):
    with pytest.raises(SrlabError, match=message):
        build_model("rdsr_s", scale=2, args=args)


def test_an_upsampler_that_reaches_further_widens_the_receptive_radius():
    # rdsr_s: radius 78 with its sub-pixel head (reach 1); bicubic + conv reaches 2: one pixel more,
    # rounded up to its size multiple 6. An upsampler reaching no further leaves the radius as it is.
    radius = {up: spec_of(build_model("rdsr_s", scale=4, args={"upsampler": up})).info.receptive_radius
              for up in ("subpixel", "bicubic", "nearest")}
    assert radius == {"subpixel": 78, "bicubic": 84, "nearest": 78}
    assert spec_of(build_model("imdn", scale=2, args={"upsampler": "liif"})).info.receptive_radius == 33
