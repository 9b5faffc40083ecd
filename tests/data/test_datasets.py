import numpy as np
import pytest
import torch
from PIL import Image

from conftest import BENCHMARKS, needs_benchmarks, photo, photo_tensor, write_folder
from srlab.data.datasets import (
    EpochSampler, PatchDataset, crop_multiple, discover_pairs, downscaled_pair, load_pair, modcrop,
)
from srlab.data.resize import bicubic_downscale, imresize
from srlab.errors import SrlabError


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_hr_only_folder_makes_lr_with_matlab_bicubic(tmp_path):
    write_folder(tmp_path / "photos", {"a": ("astronaut", (61, 47))})
    folder = discover_pairs(tmp_path / "photos", 2)
    assert folder.layout == "hr_only" and [p.name for p in folder.pairs] == ["a"]
    lr, hr = load_pair(folder.pairs[0], 2)
    assert hr.shape == (3, 46, 60)  # modcrop to a multiple of the scale, top-left anchored
    assert torch.equal(lr, bicubic_downscale(hr, 2, quantize=True))


def test_benchmark_layout_with_and_without_scale_suffix(tmp_path):
    hr = photo("chelsea", (60, 48))
    _save(tmp_path / "Set" / "HR" / "cat.png", hr)
    _save(tmp_path / "Set" / "HR" / "dog.png", hr)
    lr = np.asarray(Image.fromarray(hr).resize((30, 24), Image.BICUBIC))
    _save(tmp_path / "Set" / "LR_bicubic" / "X2" / "catx2.png", lr)
    _save(tmp_path / "Set" / "LR_bicubic" / "X2" / "dog.png", lr)
    folder = discover_pairs(tmp_path / "Set", 2)
    assert folder.layout == "benchmark" and folder.name == "Set"
    assert [p.lr.name for p in folder.pairs] == ["catx2.png", "dog.png"]
    lr_t, hr_t = load_pair(folder.pairs[0], 2)
    assert lr_t.shape == (3, 24, 30) and hr_t.shape == (3, 48, 60)
    # No X3 folder: LR images are made from the HR images.
    assert discover_pairs(tmp_path / "Set", 3).layout == "hr_only"


def test_div2k_layout_from_the_hr_folder_or_its_parent(tmp_path):
    hr = photo("coffee", (64, 48))
    _save(tmp_path / "DIV2K" / "DIV2K_train_HR" / "0001.png", hr)
    lr = np.asarray(Image.fromarray(hr).resize((16, 12), Image.BICUBIC))
    _save(tmp_path / "DIV2K" / "DIV2K_train_LR_bicubic" / "X4" / "0001x4.png", lr)
    for root in (tmp_path / "DIV2K" / "DIV2K_train_HR", tmp_path / "DIV2K"):
        folder = discover_pairs(root, 4)
        assert folder.layout == "div2k"
        assert folder.pairs[0].lr.name == "0001x4.png"


def test_missing_lr_file_and_wrong_lr_size_are_errors(tmp_path):
    hr = photo("coffee", (64, 48))
    _save(tmp_path / "S" / "HR" / "a.png", hr)
    _save(tmp_path / "S" / "HR" / "b.png", hr)
    _save(tmp_path / "S" / "LR_bicubic" / "X2" / "ax2.png", hr[:20, :20])
    with pytest.raises(SrlabError, match="no LR image for .*b.png"):
        discover_pairs(tmp_path / "S", 2)
    (tmp_path / "S" / "HR" / "b.png").unlink()
    with pytest.raises(SrlabError, match="ax2.png' is 20x20 .* needs 32x24"):
        load_pair(discover_pairs(tmp_path / "S", 2).pairs[0], 2)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(SrlabError, match="does not exist"):
        discover_pairs(tmp_path / "nope", 2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SrlabError, match="empty"):
        discover_pairs(tmp_path / "empty", 2)


def test_modcrop():
    x = torch.rand(3, 13, 10)
    assert modcrop(x, 4).shape == (3, 12, 8)
    assert torch.equal(modcrop(x, 4), x[:, :12, :8])


def test_a_downscaled_pair_is_the_photo_resized_then_modcropped_with_its_lr_made_by_d():
    hr = photo_tensor(photo("astronaut", (130, 101))).float()
    lr, small = downscaled_pair(hr, 0.75, 4)
    resized = imresize(hr, scale=0.75, quantize=True)  # 76 x 98 (MATLAB's ceil)
    assert small.shape == (3, 76, 96) and torch.equal(small, resized[:, :76, :96])
    assert torch.equal(lr, bicubic_downscale(small, 4, quantize=True)) and lr.shape == (3, 19, 24)
    for factor in (0, 1, 1.5):
        with pytest.raises(SrlabError, match="between 0 and 1"):
            downscaled_pair(hr, factor, 4)


def _dataset(tiny_photos, **kw):
    pairs = discover_pairs(tiny_photos["train"], 2).pairs
    return PatchDataset(pairs, scale=2, patch_size=kw.pop("patch_size", 24), **kw)


def test_patches_are_aligned_lr_hr_pairs(tiny_photos):
    data = _dataset(tiny_photos, augment=False, repeat=3)
    assert len(data) == 12
    for index in range(len(data)):
        lr, hr = data[index]
        assert lr.shape == (3, 12, 12) and hr.shape == (3, 24, 24)
        # The LR patch is the MATLAB downscaling of the HR patch, away from the patch borders.
        assert torch.equal(bicubic_downscale(hr, 2, quantize=True)[:, 3:-3, 3:-3], lr[:, 3:-3, 3:-3])


def test_augmentation_gives_all_eight_flips_and_rotations(tmp_path):
    write_folder(tmp_path / "one", {"a": ("astronaut", (48, 48))})
    pairs = discover_pairs(tmp_path / "one", 2).pairs
    data = PatchDataset(pairs, scale=2, patch_size=48, repeat=64)  # the patch is the whole image
    lr0, hr0 = (t.float() / 255 for t in data.images[0])
    seen = set()
    for index in range(len(data)):
        lr, hr = data[index]
        for k in range(4):
            for flip in (False, True):
                transform = lambda t: torch.rot90(t, k, (-2, -1)).flip(-1) if flip else torch.rot90(t, k, (-2, -1))  # noqa: E731
                if torch.equal(transform(hr0), hr):
                    assert torch.equal(transform(lr0), lr)  # LR and HR get the same transform
                    seen.add((k, flip))
    assert len(seen) == 8


def test_items_are_reproducible_and_decoded_once(tiny_photos, monkeypatch):
    data = _dataset(tiny_photos)
    import srlab.data.datasets as datasets

    monkeypatch.setattr(datasets, "read_rgb", lambda *a: pytest.fail("decoded during training"))
    a, b = data[5], data[5]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(data[5][1], data[6 + 4 * 10][1])


def test_patch_size_errors(tiny_photos):
    with pytest.raises(SrlabError, match="--patch_size 25 is not divisible by the scale 2"):
        _dataset(tiny_photos, patch_size=25)
    with pytest.raises(SrlabError, match="smaller than --patch_size 200"):
        _dataset(tiny_photos, patch_size=200)


def test_epoch_sampler_permutes_and_resumes_mid_epoch():
    sampler = EpochSampler(10, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    assert sorted(i - 20 for i in full) == list(range(10))
    sampler.set_epoch(2, start=4)
    assert list(sampler) == full[4:] and len(sampler) == 6
    sampler.set_epoch(3)
    assert [i - 30 for i in sampler] != [i - 20 for i in full]


@needs_benchmarks
def test_benchmark_folders_pair_up():
    for name, count in (("Set5", 5), ("Set14", 14)):
        for scale in (2, 3, 4):
            folder = discover_pairs(BENCHMARKS / name, scale)
            assert folder.layout == "benchmark" and len(folder.pairs) == count
            lr, hr = load_pair(folder.pairs[0], scale)
            assert hr.shape[-2:] == (lr.shape[-2] * scale, lr.shape[-1] * scale)


# The evaluation protocol at non-integer scales (srlab.metrics.protocol): HR cropped to multiples of p
# (s = p/q), so the LR image is exactly H/s x W/s.


@pytest.mark.parametrize(("scale", "multiple"), [(2, 2), (3.0, 3), (1.5, 3), (2.5, 5), (2.7, 27), (1.25, 5)])
def test_crop_multiple_is_the_numerator_of_the_scale(scale, multiple):
    assert crop_multiple(scale) == multiple


def test_modcrop_at_a_non_integer_scale_pairs_with_an_exact_lr_image():
    hr = torch.rand(3, 61, 58)
    cropped = modcrop(hr, 2.7)
    assert cropped.shape == (3, 54, 54)
    assert torch.equal(cropped, hr[:, :54, :54])
    assert bicubic_downscale(cropped, 2.7).shape == (3, 20, 20)


def test_a_scale_with_no_small_ratio_is_refused():
    with pytest.raises(SrlabError, match=r"scale 2\.3456789 is not a ratio p/q with q <= 100"):
        crop_multiple(2.3456789)
