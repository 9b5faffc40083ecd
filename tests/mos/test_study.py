"""Making a study (srlab.mos.create, ``srlab mos create``) and reading it back (srlab.mos.study)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from mos_fixtures import write_folders

from srlab.cli.main import main
from srlab.data.io import read_rgb
from srlab.errors import SrlabError
from srlab.mos.create import create_study
from srlab.mos.study import BAD_METHOD, load_study


def test_an_acr_study_rates_every_method_on_every_image(tmp_path):
    folders, reference = write_folders(tmp_path / "in", images=("a", "b", "c"))
    create_study(tmp_path / "study", folders, reference=reference, design="acr", repeats=2)
    study = load_study(tmp_path / "study")
    assert study.design == "acr" and study.methods == ("alpha", "beta") and study.images == ("a", "b", "c")
    real = Counter((t.trial.image, t.trial.method) for t in study.trials)
    assert real == {(image, method): 2 for image in "abc" for method in ("alpha", "beta")}
    for t in study.trials:  # copied into the study, byte for byte, and named by method and image
        assert t.first == f"images/{t.trial.method}/{t.trial.image}.png" and t.reference is None
        assert (study.folder / t.first).read_bytes() == (folders[t.trial.method] / f"{t.trial.image}.png").read_bytes()


def test_dcr_shows_the_reference_and_pair_every_two_methods(tmp_path):
    folders, reference = write_folders(tmp_path / "in", methods=("m1", "m2", "m3"), images=("a",))
    create_study(tmp_path / "dcr", folders, reference=reference, design="dcr")
    assert {t.reference for t in load_study(tmp_path / "dcr").trials} == {"images/_reference/a.png"}
    create_study(tmp_path / "pair", folders, design="pair")
    pairs = {(t.trial.method, t.trial.other) for t in load_study(tmp_path / "pair").trials}
    assert pairs == {("m1", "m2"), ("m1", "m3"), ("m2", "m3")}


def test_attention_checks_repeat_a_trial_and_show_a_degraded_image(tmp_path):
    folders, reference = write_folders(tmp_path / "in")
    create_study(tmp_path / "study", folders, reference=reference, design="acr", attention_checks=4, seed=3)
    study = load_study(tmp_path / "study")
    checks = [t for t in study.trials if t.trial.check]
    assert Counter(t.trial.check for t in checks) == {"repeat": 2, "bad": 2}
    for t in checks:
        if t.trial.check == "repeat":
            original = study.trial(t.trial.repeats)
            assert original.trial.check is None and (original.first, original.trial.method) == (t.first, t.trial.method)
        else:
            assert t.trial.method == BAD_METHOD
            bad, source = read_rgb(study.folder / t.first), read_rgb(reference / f"{t.trial.image}.png")
            assert bad.shape == source.shape and torch.mean(torch.abs(bad - source)) > 0.1
    # ids say nothing: t001... in an order that mixes checks with real trials
    assert [t.trial.id for t in study.trials] == [f"t{k:03d}" for k in range(1, 9)]


def test_pair_bad_checks_pair_a_method_with_the_bad_image(tmp_path):
    folders, _ = write_folders(tmp_path / "in")
    create_study(tmp_path / "study", folders, design="pair", attention_checks=2)
    bad = [t for t in load_study(tmp_path / "study").trials if t.trial.check == "bad"]
    assert len(bad) == 1 and bad[0].trial.other == BAD_METHOD and bad[0].second.startswith("images/_bad/")


def test_the_same_seed_makes_the_same_study(tmp_path):
    folders, reference = write_folders(tmp_path / "in")
    for name in ("one", "two"):
        create_study(tmp_path / name, folders, reference=reference, attention_checks=3, seed=7)
    one, two = (json.loads((tmp_path / n / "study.json").read_text()) for n in ("one", "two"))
    assert one["trials"] == two["trials"]


def test_cli_create_reports_images_missing_from_a_method(tmp_path, capsys):
    folders, _ = write_folders(tmp_path / "in", images=("a", "b"))
    (folders["beta"] / "b.png").unlink()
    code = main(["mos", "create", str(tmp_path / "study"), "--method", f"alpha={folders['alpha']}",
                 "--method", f"beta={folders['beta']}"])
    captured = capsys.readouterr()
    assert code == 0
    assert "srlab: warning: image 'b' is missing from beta: left out" in captured.err
    assert "acr study, 1 images, 2 trials" in captured.out
    assert load_study(tmp_path / "study").images == ("a",)


def test_an_existing_study_is_never_overwritten(tmp_path, capsys):
    folders, _ = write_folders(tmp_path / "in")
    args = ["mos", "create", str(tmp_path / "study"), "--method", f"alpha={folders['alpha']}"]
    assert main(args) == 0
    before = (tmp_path / "study" / "study.json").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    assert "already holds a study" in capsys.readouterr().err
    assert (tmp_path / "study" / "study.json").read_bytes() == before


@pytest.mark.parametrize("extra, message", [
    (["--design", "dcr"], "--design dcr rates against the reference: give --reference FOLDER"),
    (["--design", "pair"], "--design pair needs at least 2 --method NAME=FOLDER"),
    (["--method", "alpha"], "--method expects NAME=FOLDER"),
    (["--method", "_x=in"], "--method '_x': a method name is letters"),
    (["--method", "gamma=nowhere"], "gamma: 'nowhere' is not a folder of images"),
    (["--reference", "nowhere"], "--reference: 'nowhere' is not a folder of images"),
])
def test_cli_create_refuses_bad_flags_in_one_line(tmp_path, capsys, monkeypatch, extra, message):
    folders, _ = write_folders(tmp_path / "in")
    monkeypatch.chdir(tmp_path)
    code = main(["mos", "create", "study", "--method", f"alpha={folders['alpha']}", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("srlab: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "study" / "study.json").exists()


def test_no_common_image_is_an_error(tmp_path):
    folders, _ = write_folders(tmp_path / "in", images=("a",))
    (folders["beta"] / "a.png").rename(folders["beta"] / "z.png")
    with pytest.raises(SrlabError, match="no image name is in every --method"):
        create_study(tmp_path / "study", folders)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["trials"][0]["files"].update(first="../../etc/passwd"), "leaves the study folder"),
    (lambda d: d["trials"][0]["files"].update(first="/etc/passwd"), "is not a relative path"),
    (lambda d: d.update(design="mushra"), "design 'mushra' is none of"),
    (lambda d: d["trials"][1].update(id=d["trials"][0]["id"]), "two trials share an id"),
    (lambda d: d.pop("trials"), "not a valid study file ('trials')"),
])
def test_a_tampered_study_file_is_refused(tmp_path, edit, message):
    folders, _ = write_folders(tmp_path / "in")
    create_study(tmp_path / "study", folders)
    path = tmp_path / "study" / "study.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(SrlabError, match="not a valid study file") as error:
        load_study(tmp_path / "study")
    assert message in str(error.value)


def test_a_symlink_out_of_the_study_is_refused(tmp_path):
    folders, _ = write_folders(tmp_path / "in")
    create_study(tmp_path / "study", folders)
    image = tmp_path / "study" / "images" / "alpha" / "img1.png"
    image.unlink()
    image.symlink_to(tmp_path / "in" / "alpha" / "img1.png")
    with pytest.raises(SrlabError, match="leaves the study folder"):
        load_study(tmp_path / "study")


def test_a_folder_without_a_study_is_a_one_line_error(tmp_path):
    with pytest.raises(SrlabError, match="is not a MOS study .no study.json.: make one with `srlab mos create`"):
        load_study(tmp_path)


def fake_benchmark_report(root, models=("bicubic", "rdsr_s", "net_HR")):
    """The layout srlab.report.benchmark writes: results.json (its models) and crops/<stem>_<label>.png."""
    from PIL import Image

    (root / "crops").mkdir(parents=True)
    (root / "results.json").write_text(json.dumps({"models": list(models)}))
    for stem in ("Set5_baby_x4", "Set5_bird_x4"):
        for k, label in enumerate(("HR", *models, "overview", "comparison")):
            Image.new("RGB", (8, 8), (k * 20, 0, 0)).save(root / "crops" / f"{stem}_{label}.png")
    return root


def test_a_study_from_a_benchmark_reports_crops(tmp_path, capsys):
    report = fake_benchmark_report(tmp_path / "report")
    assert main(["mos", "create", str(tmp_path / "study"), "--from_benchmark", str(report), "--design", "dcr"]) == 0
    study = load_study(tmp_path / "study")
    assert study.methods == ("bicubic", "rdsr_s", "net_HR") and study.images == ("Set5_baby_x4", "Set5_bird_x4")
    for t in study.trials:  # each method's crop, the HR crop as the reference (not net_HR's)
        crop = report / "crops" / f"{t.trial.image}_{t.trial.method}.png"
        assert (study.folder / t.first).read_bytes() == crop.read_bytes()
        hr = report / "crops" / f"{t.trial.image}_HR.png"
        assert (study.folder / t.reference).read_bytes() == hr.read_bytes()


def test_from_benchmark_refuses_a_folder_that_is_not_a_report(tmp_path, capsys):
    assert main(["mos", "create", str(tmp_path / "study"), "--from_benchmark", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"--from_benchmark '{tmp_path}': no readable results.json" in err
    (tmp_path / "results.json").write_text(json.dumps({"models": ["bicubic"]}))
    assert main(["mos", "create", str(tmp_path / "study"), "--from_benchmark", str(tmp_path)]) == 2
    assert "no crops of the models in crops/" in capsys.readouterr().err
    assert main(["mos", "create", str(tmp_path / "study"), "--from_benchmark", str(tmp_path), "--method", "a=b"]) == 2
    assert "drop --method/--reference" in capsys.readouterr().err
    assert main(["mos", "create", str(tmp_path / "study")]) == 2
    assert "needs --method NAME=FOLDER (one per method) or --from_benchmark" in capsys.readouterr().err
