"""The registry of official checkpoints (srlab/weights/official.json), its cache, and the bundled
conversions: the registry names real files (checked against ../shared/official-weights, a mirror of the
releases), `create_model(..., pretrained="official")` loads them from the cache, downloads are checked,
and offline the error says what to fetch from where."""

import http.client
import io
import re

import pytest
import torch
from safetensors import safe_open

import srlab
from conftest import OFFICIAL_WEIGHTS, needs_weights
from srlab.errors import SrlabError
from srlab.models import list_models, official, spec_of
from srlab.models.create import DEFAULT_MODEL, bundled_weights, list_bundled, model_with_weights

# Licences that allow srlab to ship the weights (with their notice, src/srlab/weights/LICENSES).
REDISTRIBUTABLE = {"MIT", "Apache-2.0"}


def serve(data: bytes):
    """A stand-in for urlopen that answers every request with ``data``."""

    def urlopen(request, timeout=None):
        return io.BytesIO(data)

    return urlopen


def test_entries_are_well_formed():
    entries = official.entries()
    assert len({e.key for e in entries}) == len(entries) == 65
    for e in entries:
        assert e.model in list_models(), e.key
        assert re.fullmatch(r"[0-9a-f]{64}", e.sha256) and re.fullmatch(r"[0-9a-f]{40}", e.commit), e.key
        assert e.url == f"https://raw.githubusercontent.com/{e.repo}/{e.commit}/{e.path}"
        assert e.size > 0 and e.licence and e.input_range.startswith("[0, ")
    # one file may serve several scales (CARN-M), never two different files the same cache path
    by_path = {}
    for e in entries:
        assert by_path.setdefault((e.folder, e.file), e.sha256) == e.sha256


def test_input_ranges_are_those_of_the_official_code():
    ranges = {e.model: e.input_range for e in official.entries()}
    assert {m for m, r in ranges.items() if r.startswith("[0, 255]")} == {
        "rlfn", "rlfn_s", "rlfn_ntire", "rfdn_aim", "smsr", "sr_lut", "fiwhn"
    }


def test_bundled_entries_are_redistributable_and_shipped():
    bundled = [e for e in official.entries() if e.bundled]
    assert {(e.model, e.scale) for e in bundled} == {(m, s) for m in ("bsrn", "etds_l") for s in (2, 3, 4)}
    for e in bundled:
        assert e.licence in REDISTRIBUTABLE
        path = bundled_weights(e.model, e.scale)
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
        assert meta["srlab.source"] == e.url and meta["srlab.source_sha256"] == e.sha256
    # every bundled file is srlab's own or an official release the registry describes
    own = {("rdsr_s", s) for s in (2, 3, 4)} | {("rdsr_adaptive", 4)}
    assert set(list_bundled()) == own | {(e.model, e.scale) for e in bundled}


def test_default_model_is_a_bundled_release_at_every_scale():
    assert DEFAULT_MODEL == "etds_l"
    assert all(official.find(DEFAULT_MODEL, s).bundled for s in (2, 3, 4))


@needs_weights
@pytest.mark.parametrize("entry", official.entries(), ids=lambda e: e.key)
def test_mirror_holds_the_registered_file(entry):
    path = OFFICIAL_WEIGHTS / entry.folder / entry.file
    assert official.problem(entry, path) is None


@needs_weights
@pytest.mark.parametrize("entry", [e for e in official.entries() if e.bundled], ids=lambda e: e.key)
def test_bundled_weights_compute_what_the_release_computes(entry):
    bundled = srlab.create_model(entry.model, scale=entry.scale, pretrained=True)
    released = srlab.create_model(entry.model, scale=entry.scale, checkpoint=OFFICIAL_WEIGHTS / entry.folder / entry.file)
    assert type(bundled) is type(released)
    x = torch.rand(1, 3, 17, 23, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(bundled(x), released(x))


def test_find_picks_the_variant_by_hyper_parameters():
    assert official.find("ecbsr_etds", 2).key == "ecbsr_etds_m4c16_x2"
    assert official.find("ecbsr_etds", 2, {"channels": 32}).key == "ecbsr_etds_m4c32_x2"
    assert official.find("ecbsr_etds", 2, {"channels": 16}).key == "ecbsr_etds_m4c16_x2"  # the defaults, spelled out
    assert official.find("sr_lut", 4).key == "sr_lut_s_x4"
    assert official.find("sr_lut", 4, {"field": "V", "levels": 257}).key == "sr_lut_v_x4"
    assert official.find("carn_m", 3).file == official.find("carn_m", 4).file == "carn_m.pth"
    with pytest.raises(SrlabError, match=r"no official ecbsr_etds x2 weights for hyper-parameters \{'channels': 8\}: "
                                         r"released are ecbsr_etds_m4c16_x2: defaults; ecbsr_etds_m4c32_x2"):
        official.find("ecbsr_etds", 2, {"channels": 8})
    with pytest.raises(SrlabError, match="the official rlfn weights are for x2, x4, not x3"):
        official.find("rlfn", 3)
    with pytest.raises(SrlabError, match="no official weights for model 'rdsr' in srlab's registry"):
        official.find("rdsr", 2)


def test_select_takes_releases_and_models():
    keys = [e.key for e in official.select(["bsrn", "bsrn_x4", "rlfn_x2"])]
    assert keys == ["bsrn_x2", "bsrn_x3", "bsrn_x4", "rlfn_x2"]
    with pytest.raises(SrlabError, match="no official weights called 'bsrn_x5'"):
        official.select(["bsrn_x5"])


def test_offline_without_cache_says_what_to_fetch_and_where(offline_home):
    entry = official.get("imdn_x4")
    with pytest.raises(SrlabError) as e:
        srlab.create_model("imdn", scale=4, pretrained="official")
    message = str(e.value)
    assert "\n" not in message
    assert "cannot be downloaded (" in message and "offline?" in message
    assert f"fetch {entry.url} by hand and put it at {offline_home / 'weights' / 'imdn' / 'IMDN_x4.pth'}" in message
    assert "srlab weights download imdn_x4 --from DIR" in message
    assert not (offline_home / "weights" / "imdn").exists() or not any((offline_home / "weights" / "imdn").iterdir())


@needs_weights
def test_pretrained_official_loads_from_the_cache_offline(offline_home):
    """RLFN's release expects [0, 255]: through the cache it loads into srlab's rlfn, which scales inside."""
    entry = official.get("rlfn_x4")
    assert official.fetch(entry, mirror=OFFICIAL_WEIGHTS) == offline_home / "weights" / "rlfn" / "rlfn_x4.pth"
    model = srlab.create_model("rlfn", scale=4, pretrained="official")  # urlopen is offline: the cache serves
    reference = srlab.create_model("rlfn", scale=4, checkpoint=OFFICIAL_WEIGHTS / "rlfn" / "rlfn_x4.pth")
    assert not model.training
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
        assert torch.equal(out, reference(x))
        assert abs(out.mean().item() - x.mean().item()) < 0.05  # [0, 1] in, [0, 1] out


@needs_weights
def test_a_variant_with_hyper_parameters_loads(offline_home):
    official.fetch(official.get("ecbsr_etds_m4c32_x2"), mirror=OFFICIAL_WEIGHTS)
    model = srlab.create_model("ecbsr_etds", scale=2, pretrained="official", args={"channels": 32})
    assert spec_of(model).args["channels"] == 32


@needs_weights
def test_download_is_checked_and_placed(offline_home, monkeypatch):
    entry = official.get("etds_t_x2")
    data = (OFFICIAL_WEIGHTS / entry.folder / entry.file).read_bytes()
    monkeypatch.setattr(official, "urlopen", serve(data))
    path = official.fetch(entry)
    assert path.read_bytes() == data and not path.with_name(path.name + ".part").exists()
    assert spec_of(srlab.create_model("etds_t", scale=2, pretrained="official")).name == "etds_t"


def test_corrupt_download_is_deleted(offline_home, monkeypatch):
    entry = official.get("etds_t_x2")
    monkeypatch.setattr(official, "urlopen", serve(b"<html>rate limited</html>"))
    with pytest.raises(SrlabError, match=rf"{re.escape(entry.url)} is not the released ETDS_M5C16_x2.pth "
                                         rf"\(25 bytes, expected {entry.size}\): deleted it"):
        official.fetch(entry)
    assert list((offline_home / "weights" / "etds").iterdir()) == []


def test_corrupt_cached_file_is_named(offline_home):
    entry = official.get("etds_t_x2")
    path = official.cache_path(entry)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\0" * entry.size)
    with pytest.raises(SrlabError, match=r"ETDS_M5C16_x2.pth is not the released ETDS_M5C16_x2.pth \(SHA-256 "
                                         r"[0-9a-f]{16}\.\.\., expected [0-9a-f]{16}\.\.\.\): delete it, then run "
                                         r"`srlab weights download etds_t_x2` again"):
        srlab.create_model("etds_t", scale=2, pretrained="official")


def test_mirror_without_the_file(offline_home, tmp_path):
    with pytest.raises(SrlabError, match=r"rlfn_x2.pth is neither in .*rlfn nor in .*: fetch it from https://"):
        official.fetch(official.get("rlfn_x2"), mirror=tmp_path)


def test_pretrained_mistakes_are_one_line_errors():
    with pytest.raises(SrlabError, match=r"bundles no weights for 'rlfn' x4 .*--checkpoint FILE .*; or the authors' "
                                         r"release: `srlab weights download rlfn_x4`, then pretrained='official'$"):
        srlab.create_model("rlfn", scale=4, pretrained=True)
    with pytest.raises(SrlabError, match=r"pretrained='yes': use True \(srlab's bundled weights\) or 'official'"):
        srlab.create_model("rlfn", scale=4, pretrained="yes")
    with pytest.raises(SrlabError, match=r"give either pretrained='official' or a checkpoint, not both"):
        srlab.create_model("rlfn", scale=4, pretrained="official", checkpoint="x.pth")


def test_srlab_home_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("SRLAB_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert official.cache_path(official.get("bsrn_x4")) == tmp_path / ".cache" / "srlab" / "weights" / "bsrn" / \
        "net_g_BSRN_x4.pth"


def test_commands_say_where_the_release_goes(offline_home):
    """`srlab upscale --model rlfn` without weights: the error names the download and the flag to pass."""
    path = offline_home / "weights" / "rlfn" / "rlfn_x4.pth"
    with pytest.raises(SrlabError, match=rf"model 'rlfn' x4 has no weights .*; or the authors' release: "
                                         rf"`srlab weights download rlfn_x4`, then --checkpoint {re.escape(str(path))}$"):
        model_with_weights("rlfn", scale=4)
    with pytest.raises(SrlabError, match=r"model 'rdsr' x2 has no weights .*an official release$"):  # none released
        model_with_weights("rdsr", scale=2)


def test_broken_off_download_leaves_nothing(offline_home, monkeypatch):
    class Broken(io.BytesIO):
        def read(self, size=-1):
            raise http.client.IncompleteRead(b"partial", 1000)

    monkeypatch.setattr(official, "urlopen", lambda request, timeout=None: Broken())
    with pytest.raises(SrlabError, match=r"official etds_t_x2 weights broke off while downloading \(IncompleteRead"):
        official.fetch(official.get("etds_t_x2"))
    assert list((offline_home / "weights" / "etds").iterdir()) == []
