"""Architecture auto-detection: a checkpoint's tensor names and shapes tell its model, scale and
hyper-parameters (srlab.models.detect), for every registered model and every official release."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import srlab
from conftest import OFFICIAL_WEIGHTS, needs_weights, run_cli, write_folder
from srlab.errors import SrlabError
from srlab.models.detect import Detected, detect_model, matching_models
from srlab.models.registry import build_model, list_models, model_entry, spec_of
from srlab.models.reparam import deploy, has_deploy_form
from srlab.models.weights import Checkpoint, save_weights


def _meta_model(name: str, scale: int, args: dict | None = None, form: str = "train") -> torch.nn.Module:
    with torch.device("meta"):
        model = build_model(name, scale=scale, args=args)
        return deploy(model) if form == "deploy" else model


def _checkpoint(model: torch.nn.Module, file_name: str = "weights.pth") -> Checkpoint:
    return Checkpoint(model.state_dict(), None, None, {}, Path(file_name))


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# --- every registered model, at each of its scales, in each of its forms --------------------------------
@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_is_detected_back(name):
    scales = model_entry(name).info.scales
    forms = ["train", "deploy"] if has_deploy_form(_meta_model(name, scales[0])) else ["train"]
    for form in forms:
        models = {s: _meta_model(name, s, form=form) for s in scales}
        shapes = {s: _shapes(model) for s, model in models.items()}
        for scale in scales:
            ckpt = _checkpoint(models[scale])
            if not ckpt.state_dict:  # bicubic: nothing to detect
                with pytest.raises(SrlabError, match="holds no tensors"):
                    detect_model(ckpt)
                continue
            expected = Detected(name, scale, {}, form)
            # Weights that do not depend on the scale (CARN's multi-scale network, FSRCNN's transposed
            # convolution, pre-upsampling and arbitrary-scale models) need the scale from the user.
            if sum(other == shapes[scale] for other in shapes.values()) > 1:
                with pytest.raises(SrlabError, match=rf"holds {name} weights that serve .*x{scale}.*: pass --scale S"):
                    detect_model(ckpt)
                assert detect_model(ckpt, scale=scale) == expected
            else:
                assert detect_model(ckpt) == expected


# --- hyper-parameters read from the weights (ModelInfo.args_from_weights) --------------------------------
@pytest.mark.parametrize(
    ("name", "scale", "args", "form"),
    [
        ("edsr", 3, {"num_blocks": 20}, "train"),
        ("edsr_baseline", 4, {"channels": 96}, "train"),
        ("edsr_baseline", 2, {"num_blocks": 4}, "train"),
        ("ecbsr", 2, {"num_modules": 4, "channels": 16}, "train"),
        ("ecbsr", 4, {"num_modules": 2, "channels": 8}, "deploy"),
        ("ecbsr_etds", 3, {"num_modules": 6, "channels": 40}, "deploy"),
        ("ecbsr_etds", 2, {"channels": 32}, "train"),
        ("imdn", 4, {"channels": 32, "num_modules": 3}, "train"),
        ("rlfn_ntire", 4, {"num_blocks": 3}, "train"),
        ("rlfn_s", 2, {"esa_channels": 8}, "train"),
        ("span", 3, {"feature_channels": 16}, "train"),
        ("rdsr_s", 2, {"channels": 24, "num_blocks": 3}, "train"),
        ("rdsr", 4, {"num_blocks": 8, "ca_reduction": 10}, "train"),
        ("bsrn", 3, {"num_feat": 32, "num_block": 6}, "train"),
        ("safmn", 4, {"dim": 24}, "train"),
        ("safmn_l", 2, {"ffn_scale": 1.5}, "train"),
        ("qsrnet_large", 3, {"channels": 24, "num_intermediate_layers": 4}, "train"),
    ],
)
def test_hyper_parameters_are_read_from_the_weights(name, scale, args, form):
    ckpt = _checkpoint(_meta_model(name, scale, args, form))
    assert detect_model(ckpt) == Detected(name, scale, args, form)


def test_the_users_hyper_parameters_narrow_the_search(tmp_path):
    # RFDN declares no reader: a width of its own is found with the user's hyper-parameters only.
    ckpt = _checkpoint(_meta_model("rfdn", 3, {"channels": 24}), "rfdn24.pth")
    with pytest.raises(SrlabError, match="'rfdn24.pth' fits no registered model"):
        detect_model(ckpt)
    # rfdn and rfdn_l differ in their defaults only
    with pytest.raises(SrlabError, match=r"fits several models \(rfdn x3 channels=24, rfdn_l x3 channels=24\)"):
        detect_model(ckpt, args={"channels": 24})
    assert detect_model(ckpt, name="rfdn", args={"channels": 24}) == Detected("rfdn", 3, {"channels": 24}, "train")
    torch.save(srlab.create_model("rfdn", scale=3, args={"channels": 24}).state_dict(), tmp_path / "w.pth")
    assert spec_of(srlab.create_model("rfdn", checkpoint=tmp_path / "w.pth", args={"channels": 24})).scale == 3


def test_a_variant_at_its_defaults_wins_over_another_with_changed_hyper_parameters():
    # edsr_baseline's weights are also edsr's with channels=64, num_blocks=16 (res_scale is not in them).
    found = matching_models(_meta_model("edsr_baseline", 2).state_dict())
    assert found == [Detected("edsr_baseline", 2, {}, "train")]


def test_weights_that_several_variants_explain_equally_are_ambiguous():
    # 128 channels and 8 blocks change two defaults of edsr and two of edsr_baseline, whose residual
    # scaling (not stored in the weights) differs: the user chooses.
    ckpt = _checkpoint(_meta_model("edsr", 2, {"channels": 128, "num_blocks": 8}), "mine.pth")
    with pytest.raises(SrlabError, match=r"'mine.pth' fits several models \(edsr x2 channels=128 num_blocks=8, "
                                         r"edsr_baseline x2 channels=128 num_blocks=8\): pass --model NAME") as e:
        detect_model(ckpt)
    assert "\n" not in str(e.value)
    assert detect_model(ckpt, name="edsr") == Detected("edsr", 2, {"channels": 128, "num_blocks": 8}, "train")


def test_a_scale_in_the_file_name_settles_weights_that_serve_every_scale():
    model = _meta_model("fsrcnn_etds", 2)
    assert detect_model(_checkpoint(model, "my_FSRCNN_X3.pth")).scale == 3
    with pytest.raises(SrlabError, match=r"'fsrcnn.pth' holds fsrcnn_etds weights that serve x2, x3, x4 alike"):
        detect_model(_checkpoint(model, "fsrcnn.pth"))
    # a name that states a scale the weights cannot have is not trusted over the shapes
    with pytest.raises(SrlabError, match="pass --scale S"):
        detect_model(_checkpoint(model, "fsrcnn_x8.pth"))


def test_unknown_weights_name_the_file_and_the_nearest_models():
    state = {"encoder.stem.weight": torch.zeros(8, 3, 3, 3), "decoder.out.weight": torch.zeros(3, 8, 3, 3)}
    with pytest.raises(SrlabError, match=r"'odd.pth' fits no registered model \(2 tensors, first "
                                         r"'encoder.stem.weight'; nearest names: \w+, \w+, \w+\)") as e:
        detect_model(Checkpoint(state, None, None, {}, Path("odd.pth")))
    assert "\n" not in str(e.value)
    ckpt = _checkpoint(_meta_model("imdn", 2), "imdn.pth")
    with pytest.raises(SrlabError, match="'imdn.pth' does not fit model 'rlfn' at any of its scales"):
        detect_model(ckpt, name="rlfn")
    with pytest.raises(SrlabError, match=r"'imdn.pth' fits imdn x2, not x3: fix --scale or leave it out"):
        detect_model(ckpt, scale=3)
    with pytest.raises(SrlabError, match=r"does not fit model 'imdn' channels=32 at any of its scales"):
        detect_model(ckpt, name="imdn", args={"channels": 32})


# --- create_model and srlab's own checkpoints -------------------------------------------------------------
def test_create_model_detects_a_foreign_checkpoint_and_computes_the_same(tmp_path):
    torch.manual_seed(0)
    model = srlab.create_model("imdn", scale=2, args={"channels": 16, "num_modules": 2}).eval()
    torch.save({"params": model.state_dict()}, tmp_path / "net.pth")
    loaded = srlab.create_model(checkpoint=tmp_path / "net.pth")
    assert (spec_of(loaded).name, spec_of(loaded).scale) == ("imdn", 2)
    assert spec_of(loaded).args == spec_of(model).args
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    # the name alone, or the scale alone, narrows the detection
    assert spec_of(srlab.create_model("imdn", checkpoint=tmp_path / "net.pth")).scale == 2
    assert spec_of(srlab.create_model(scale=2, checkpoint=tmp_path / "net.pth")).name == "imdn"


def test_a_fused_checkpoint_loads_in_the_deploy_form(tmp_path):
    model = srlab.create_model("span", scale=2, args={"feature_channels": 8})
    fused = deploy(model)
    save_file({k: v.contiguous() for k, v in fused.state_dict().items()}, tmp_path / "span_fused.safetensors")
    loaded = srlab.create_model(checkpoint=tmp_path / "span_fused.safetensors")
    assert spec_of(loaded).form == "deploy" and spec_of(loaded).args["feature_channels"] == 8


def test_srlab_checkpoints_are_read_as_they_record(tmp_path):
    model = deploy(srlab.create_model("ecbsr_etds", scale=3, args={"channels": 8}))
    save_weights(tmp_path / "w.safetensors", model)
    found = detect_model(tmp_path / "w.safetensors")
    assert (found.name, found.scale, found.form) == ("ecbsr_etds", 3, "deploy")
    assert found.args == spec_of(model).args


# --- every official release in ../shared/official-weights ------------------------------------------------
# What each file is detected as ("name xS args (deploy form)"), or the start of its one-line error: a
# multi-scale network, or an architecture srlab does not have. A new file must be added here.
OFFICIAL = {
    "arm/arm-carn.pth": "arm_carn x4",
    "arm/arm-fsrcnn.pth": "arm_fsrcnn x4",
    "bsrn/net_g_BSRN-S.pth": "bsrn_s x4",
    **{f"bsrn/net_g_BSRN_x{s}.pth": f"bsrn x{s}" for s in (2, 3, 4)},
    "camixersr/CAMixerSR_S.pth": "camixersr_s x4",
    "carn/carn_m.pth": "error: holds carn_m weights that serve x2, x3, x4 alike: pass --scale S",
    **{
        f"etds/ETDS_{tag}_x{s}.pth": f"etds_{size} x{s} (deploy form)"
        for tag, size in {"M4C32": "s", "M5C16": "t", "M6C32": "m", "M7C48": "l"}.items()
        for s in (2, 3, 4)
    },
    **{
        f"etds-ecbsr/ECBSR_ET_{tag}_x{s}.pth": f"ecbsr_etds x{s}{args} (deploy form)"
        for tag, args in {"M4C16": "", "M4C32": " channels=32", "M6C40": " num_modules=6 channels=40"}.items()
        for s in (2, 3, 4)
    },
    **{f"etds-espcn/ESPCN_x{s}.pth": f"espcn_etds x{s}" for s in (2, 3, 4)},
    **{f"etds-fsrcnn/FSRCNN_x{s}.pth": f"fsrcnn_etds x{s}" for s in (2, 3, 4)},  # the scale from the name
    **{f"fiwhn/model_best_x{s}.pt": f"fiwhn x{s}" for s in (2, 3, 4)},
    **{f"imdn/IMDN_x{s}.pth": f"imdn x{s}" for s in (2, 3, 4)},
    "mulut/Model_200000.safetensors": "mulut_net x4",  # MuLUT's network (the state dict of its SRNets)
    "pcsr/carn-pcsr-phase1_iter_last.pth": "pcsr_carn x4",
    "pcsr/fsrcnn-pcsr-phase1_iter_last.pth": "pcsr_fsrcnn x4",
    "pcsr/carn-x4_iter_last.pth": "error: fits no registered model",  # PCSR's own CARN (batch norms)
    "pcsr/fsrcnn-x4_iter_last.pth": "arm_fsrcnn x4",  # PCSR's FSRCNN baseline: ARM-FSRCNN at full width
    **{f"ramit/RAMiT-{v}_X{s}.pth": f"{name} x{s}" for v, name in {"1": "ramit_1", "slimSR": "ramit_slimsr"}.items()
       for s in (2, 3, 4)},
    "rfdn/RFDN_AIM.pth": "rfdn_aim x4",
    "rlfn/rlfn_ntire_x4.pth": "rlfn_ntire x4",
    **{f"rlfn/rlfn{v}_x{s}.pth": f"rlfn{v} x{s}" for v in ("", "_s") for s in (2, 4)},
    "safmn/team23_safmnpp.pth": "safmn_pp x4",
    "smsr/model_1000.pt": "smsr x2",
    "span/team38_span_ch28_slim.pth": "span_ch28 x4 (deploy form)",
}
_OFFICIAL_FILES = (
    sorted(
        p.relative_to(OFFICIAL_WEIGHTS).as_posix()
        for p in OFFICIAL_WEIGHTS.rglob("*")
        if p.suffix in (".pth", ".pt", ".safetensors")
    )
    if OFFICIAL_WEIGHTS.is_dir()
    else []
)


@needs_weights
def test_every_official_release_is_listed():
    assert sorted(set(_OFFICIAL_FILES) - set(OFFICIAL)) == []


@needs_weights
@pytest.mark.parametrize("file", _OFFICIAL_FILES)
def test_official_releases_are_detected_and_load(file):
    path = OFFICIAL_WEIGHTS / file
    expected = OFFICIAL[file]
    if expected.startswith("error: "):
        with pytest.raises(SrlabError, match=f"'{path}' {expected.removeprefix('error: ')}") as e:
            detect_model(path)
        assert "\n" not in str(e.value)
        return
    found = detect_model(path)
    assert found.describe() == expected
    model = srlab.create_model(checkpoint=path)  # strict loading
    spec = spec_of(model)
    assert (spec.name, spec.scale, spec.form) == (found.name, found.scale, found.form)
    assert {k: spec.args[k] for k in found.args} == found.args


@needs_weights
def test_a_registered_release_is_known_by_its_checksum_whatever_its_name(tmp_path):
    # FSRCNN's tensors are the same at every scale: without the registry only a scale in the file
    # name would settle it.
    renamed = tmp_path / "weights.pth"
    shutil.copyfile(OFFICIAL_WEIGHTS / "etds-fsrcnn" / "FSRCNN_x3.pth", renamed)
    assert detect_model(renamed).describe() == "fsrcnn_etds x3"


# --- the CLI: neither --model nor --scale --------------------------------------------------------------
@needs_weights
def test_eval_and_upscale_need_only_the_checkpoint(tmp_path, capsys):
    data = write_folder(tmp_path / "hr", {"cat": ("chelsea", (48, 36))})
    code, out, err = run_cli(capsys, "eval", "--checkpoint", OFFICIAL_WEIGHTS / "imdn" / "IMDN_x2.pth",
                             "--data", data, "--quiet")
    assert code == 0, err
    assert " x2 " in out and "imdn" in out
    code, _, err = run_cli(capsys, "upscale", "--checkpoint",
                           OFFICIAL_WEIGHTS / "etds-ecbsr" / "ECBSR_ET_M6C40_x3.pth", data / "cat.png",
                           "-o", tmp_path / "out")
    assert code == 0, err
    assert (tmp_path / "out" / "cat_x3.png").is_file()


@needs_weights
def test_a_multi_scale_checkpoint_asks_for_the_scale(tmp_path, capsys):
    data = write_folder(tmp_path / "hr", {"cat": ("chelsea", (48, 36))})
    carn_m = OFFICIAL_WEIGHTS / "carn" / "carn_m.pth"
    code, _, err = run_cli(capsys, "eval", "--checkpoint", carn_m, "--data", data, "--quiet")
    assert code == 2
    assert err.strip().startswith("srlab: error:") and "pass --scale S" in err and err.count("\n") == 1
    code, out, err = run_cli(capsys, "eval", "--checkpoint", carn_m, "--scale", "3", "--data", data, "--quiet")
    assert code == 0, err
    assert " x3 " in out and "carn_m" in out
