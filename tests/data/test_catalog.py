"""The data set catalog, layout verification and the checked, all-or-nothing download.

Fake data roots hold small real photographs (scikit-image) in the DIV2K and benchmark layouts, with LR
images made by resizing; DIV2K is shrunk to 4 train + 2 valid images (same folders and names). Downloads
are served from local archives by a replaced URL opener: nothing touches the network.
"""

from __future__ import annotations

import dataclasses
import email.message
import hashlib
import io
import json
import re
import tarfile
import urllib.error
import urllib.response
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srlab.data import catalog, download as dl
from srlab.data.catalog import Archive, DatasetInfo, Extract, Part
from srlab.data.datasets import discover_pairs, load_pair
from srlab.errors import SrlabError
from conftest import BENCHMARKS, needs_benchmarks, photo

HEX = {"sha256": re.compile(r"^[0-9a-f]{64}$"), "md5": re.compile(r"^[0-9a-f]{32}$")}
_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")


# ----------------------------------------------------------------------------------------------------
# Helpers: fake layouts and a local URL opener
# ----------------------------------------------------------------------------------------------------


def write_set(root: Path, info: DatasetInfo, scales=(2, 3, 4), size=(50, 38)) -> None:
    """HR photos (size, not a multiple of 3 or 4: checks the mod-crop rule) and their LR images."""
    i = 0
    for part in info.parts:
        stems = part.stems or tuple(f"img{k:03d}" for k in range(1, part.count + 1))
        (root / part.hr_dir).mkdir(parents=True, exist_ok=True)
        for stem in stems:
            hr = Image.fromarray(photo(_PHOTOS[i % len(_PHOTOS)], size))
            i += 1
            hr.save(root / part.hr_dir / f"{stem}.png")
            for s in scales:
                lr_dir = root / part.lr_path(s)
                lr_dir.mkdir(parents=True, exist_ok=True)
                hr.resize((size[0] // s, size[1] // s), Image.BICUBIC).save(lr_dir / f"{stem}x{s}.png")


def small_div2k() -> DatasetInfo:
    """DIV2K with its real folders and names, shrunk to 4 train and 2 valid images."""
    div2k = catalog.get("DIV2K")
    train, valid = div2k.parts
    return dataclasses.replace(div2k, parts=(
        dataclasses.replace(train, count=4, stems=train.stems[:4]),
        dataclasses.replace(valid, count=2, stems=valid.stems[:2]),
    ))


def serve(files: dict[str, bytes], log: list | None = None):
    """A stand-in for urllib.request.urlopen serving {url: bytes}, with HTTP Range support."""

    def opener(request, timeout=None):
        data = files[request.full_url]
        code = 200
        if (rng := request.get_header("Range")) is not None:
            start = int(rng.split("=")[1].rstrip("-"))
            data, code = data[start:], 206
        if log is not None:
            log.append((request.full_url, request.get_header("Range")))
        headers = email.message.Message()
        headers["Content-Length"] = str(len(data))
        return urllib.response.addinfourl(io.BytesIO(data), headers, request.full_url, code)

    return opener


def offline(request, timeout=None):
    raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))


def zip_bytes(folder: Path, arcroot: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                z.write(file, f"{arcroot}/{file.relative_to(folder).as_posix()}")
    return buffer.getvalue()


def tiny_set(tmp_path: Path, *, sha256: str | None = None, md5: str | None = None,
             url: str = "https://example.invalid/tiny.zip") -> tuple[DatasetInfo, bytes]:
    """A 3-image benchmark-layout set and the zip that holds it (tiny/Tiny/{HR,LR_bicubic/X2})."""
    info = DatasetInfo(
        name="Tiny", description="test set", paper="-", licence="-", homepage="-",
        parts=(Part("test", "Tiny/HR", "Tiny/LR_bicubic/X{scale}", 3),), scales=(2,),
    )
    src = tmp_path / "src"
    write_set(src, info, scales=(2,))
    data = zip_bytes(src / "Tiny", "tiny/Tiny")
    archive = Archive(url=url, size=len(data), sha256=sha256 or hashlib.sha256(data).hexdigest(), md5=md5,
                      checksum_source="test", extract=(Extract("tiny/Tiny", "Tiny"),))
    return dataclasses.replace(info, archives=(archive,)), data


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


# ----------------------------------------------------------------------------------------------------
# The catalog
# ----------------------------------------------------------------------------------------------------


def test_catalog_has_the_standard_sets_with_their_published_image_counts():
    counts = {d.name: [(p.name, p.count) for p in d.parts] for d in catalog.DATASETS}
    assert counts == {
        "DIV2K": [("train", 800), ("valid", 100)], "Flickr2K": [("train", 2650)], "Set5": [("test", 5)],
        "Set14": [("test", 14)], "B100": [("test", 100)], "Urban100": [("test", 100)],
        "Manga109": [("test", 109)],
    }
    div2k = catalog.get("div2k")  # case-insensitive
    assert div2k.parts[0].stems[0] == "0001" and div2k.parts[0].stems[-1] == "0800"
    assert div2k.parts[1].stems[0] == "0801" and div2k.parts[1].stems[-1] == "0900"
    assert catalog.get("Flickr2K").parts[0].stems[-1] == "002650"
    for info in catalog.DATASETS:
        assert info.description and info.paper and info.licence and info.homepage
        assert info.scales == (2, 3, 4)
    with pytest.raises(SrlabError, match="unknown data set 'Set6'.*Set5"):
        catalog.get("Set6")


def test_catalog_urls_are_the_canonical_hosts_and_checksums_are_well_formed():
    hosts = {
        "DIV2K": "https://data.vision.ee.ethz.ch/cvl/DIV2K/",
        "Flickr2K": "https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar",
        **{n: "https://cv.snu.ac.kr/research/EDSR/benchmark.tar" for n in ("Set5", "Set14", "B100", "Urban100")},
    }
    for info in catalog.DATASETS:
        if info.name == "Manga109":
            assert not info.archives and "manga109.org" in info.manual
            continue
        assert info.archives and info.manual is None
        for archive in info.archives:
            assert archive.url.startswith(hosts[info.name]), archive.url
            assert archive.sha256 or archive.md5, f"{archive.url}: at least one recorded checksum"
            for algorithm in ("sha256", "md5"):
                value = getattr(archive, algorithm)
                assert value is None or HEX[algorithm].match(value), (archive.url, algorithm)
            assert archive.checksum_source
    # DIV2K: HR + LR x2/x3/x4 for both splits, each with a SHA-256 and a byte size (TFDS).
    div2k = catalog.get("DIV2K")
    assert len(div2k.archives) == 8 and all(a.sha256 and a.size for a in div2k.archives)
    assert {a.filename for a in div2k.archives_for((4,))} == {
        "DIV2K_train_HR.zip", "DIV2K_valid_HR.zip", "DIV2K_train_LR_bicubic_X4.zip", "DIV2K_valid_LR_bicubic_X4.zip"}
    # One shared archive for the four benchmark sets; no SHA-256 is claimed for it.
    bench = {catalog.get(n).archives[0] for n in ("Set5", "Set14", "B100", "Urban100")}
    assert len({a.url for a in bench}) == 1 and all(a.sha256 is None for a in bench)


def test_every_archive_unpacks_into_a_folder_of_the_layout():
    for info in catalog.DATASETS:
        folders = {p.hr_dir for p in info.parts} | {p.lr_path(s) for p in info.parts for s in info.scales}
        for archive in info.archives:
            for extract in archive.extract:
                assert any(f == extract.dest or f.startswith(extract.dest + "/") for f in folders), extract


def test_fake_div2k_and_set5_verify_and_are_read_by_discover_pairs(tmp_path):
    div2k, set5 = small_div2k(), catalog.get("Set5")
    write_set(tmp_path, div2k)
    write_set(tmp_path, set5)
    assert dl.verify(div2k, tmp_path, scales=(2, 3, 4)) == []
    assert dl.verify(set5, tmp_path, scales=(2, 3, 4)) == []
    assert dl.status(set5, tmp_path).state == "present"
    assert dl.status(catalog.get("Set14"), tmp_path).state == "missing"
    # The layout is the one the loaders read: DIV2K by its _HR folder, Set5 by its set folder.
    folder = discover_pairs(tmp_path / "DIV2K" / "DIV2K_train_HR", 3)
    assert folder.layout == "div2k" and [p.name for p in folder.pairs] == ["0001", "0002", "0003", "0004"]
    assert all(p.lr is not None for p in folder.pairs)
    lr, hr = load_pair(folder.pairs[0], 3)
    assert tuple(hr.shape) == (3, 36, 48) and tuple(lr.shape) == (3, 12, 16)
    bench = discover_pairs(tmp_path / "Set5", 4)
    assert bench.layout == "benchmark" and len(bench.pairs) == 5


def test_verify_reports_a_missing_file_a_wrong_lr_size_a_wrong_count_and_strays(tmp_path):
    div2k, set5 = small_div2k(), catalog.get("Set5")
    write_set(tmp_path, div2k)
    write_set(tmp_path, set5)
    (tmp_path / "DIV2K/DIV2K_train_LR_bicubic/X2/0003x2.png").unlink()  # a missing LR file
    Image.fromarray(np.zeros((10, 13, 3), np.uint8)).save(tmp_path / "DIV2K/DIV2K_valid_LR_bicubic/X4/0802x4.png")
    (tmp_path / "DIV2K/DIV2K_valid_HR/0801.png").rename(tmp_path / "DIV2K/DIV2K_valid_HR/0901.png")
    problems = dl.verify(div2k, tmp_path)
    assert any("DIV2K_train_LR_bicubic/X2: no LR image for 0003.png" in p for p in problems), problems
    assert any(p.endswith("0802x4.png: 13x10, expected 12x9 (HR 0802.png 50x38 at x4)") for p in problems), problems
    assert any("DIV2K_valid_HR: missing 0801" in p for p in problems)
    assert any("DIV2K_valid_HR: unexpected 0901" in p for p in problems)
    assert all("\n" not in p for p in problems)

    (tmp_path / "Set5/HR/img003.png").unlink()  # wrong count: 4 HR images instead of 5
    problems = dl.verify(set5, tmp_path)
    assert f"{tmp_path}/Set5/HR: 4 HR images, expected 5" in problems
    # Its LR images are now strays, reported once per folder.
    assert sum("LR images without an HR image: img003x" in p for p in problems) == 3
    assert dl.status(set5, tmp_path).state == "partial"

    x3_dir = tmp_path / "Set5/LR_bicubic/X3"
    for f in x3_dir.iterdir():
        f.unlink()
    x3_dir.rmdir()
    assert not any("X3" in p for p in dl.verify(set5, tmp_path))  # an absent LR folder is allowed...
    assert any("LR_bicubic/X3: missing (expected 5 x3 LR images)" in p for p in dl.verify(set5, tmp_path, scales=(3,)))


def test_verify_caps_the_lines_per_folder(tmp_path):
    div2k = dataclasses.replace(small_div2k(), parts=(dataclasses.replace(
        catalog.get("DIV2K").parts[0], count=15, stems=catalog.get("DIV2K").parts[0].stems[:15]),))
    write_set(tmp_path, div2k, scales=(2,), size=(8, 8))
    for f in (tmp_path / "DIV2K/DIV2K_train_LR_bicubic/X2").iterdir():
        f.unlink()
    problems = dl.verify(div2k, tmp_path)
    assert len(problems) == dl.MAX_LINES_PER_FOLDER + 1
    assert problems[-1].endswith("X2: 5 more problems in this folder")


@needs_benchmarks
@pytest.mark.parametrize("name", ["Set5", "Set14"])
def test_shared_benchmarks_verify(name):
    info = catalog.get(name)
    assert dl.verify(info, BENCHMARKS, scales=(2, 3, 4)) == []
    st = dl.status(info, BENCHMARKS)
    assert st.state == "present" and st.parts[0].lr == {2: info.hr_count, 3: info.hr_count, 4: info.hr_count}


# ----------------------------------------------------------------------------------------------------
# Download
# ----------------------------------------------------------------------------------------------------


def use_catalog(monkeypatch, *infos: DatasetInfo) -> None:
    monkeypatch.setattr(catalog, "DATASETS", (*catalog.DATASETS, *infos))


def test_download_checks_the_checksum_unpacks_and_writes_a_manifest(tmp_path, monkeypatch):
    info, data = tiny_set(tmp_path)
    use_catalog(monkeypatch, info)
    monkeypatch.setattr(dl, "urlopen", serve({info.archives[0].url: data}))
    root = tmp_path / "root"
    assert dl.download(["Tiny"], root, log=lambda _: None) == [info]
    assert dl.verify(info, root, scales=(2,)) == []
    assert tree(root / ".srlab") == ["manifests", "manifests/Tiny.json"]  # archive and staging gone
    manifest = json.loads((root / ".srlab/manifests/Tiny.json").read_text())
    assert manifest["archives"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["archives"][0]["md5"] == hashlib.md5(data).hexdigest()
    assert len(manifest["files"]) == 6 and "Tiny/LR_bicubic/X2/img001x2.png" in manifest["files"]
    assert discover_pairs(root / "Tiny", 2).layout == "benchmark"
    # The manifest's checksums catch a file changed after the download.
    Image.fromarray(np.zeros((19, 25, 3), np.uint8)).save(root / "Tiny/LR_bicubic/X2/img002x2.png")
    problems = dl.verify(info, root)
    assert problems == [f"{root}/Tiny/LR_bicubic/X2/img002x2.png: SHA-256 differs from the downloaded file "
                        "(Tiny.json): changed or corrupt"]
    assert dl.verify(info, root, checksums=False) == []
    # A second download of a complete set does nothing.
    monkeypatch.setattr(dl, "urlopen", offline)
    original = tmp_path / "src/Tiny/LR_bicubic/X2/img002x2.png"
    (root / "Tiny/LR_bicubic/X2/img002x2.png").write_bytes(original.read_bytes())
    messages = []
    assert dl.download(["Tiny"], root, log=messages.append) == []
    assert messages == [f"Tiny: already present and verified under {root}"]


def test_failed_checksum_leaves_nothing_behind_and_keeps_what_was_there(tmp_path, monkeypatch):
    info, data = tiny_set(tmp_path, sha256="0" * 64)
    use_catalog(monkeypatch, info)
    monkeypatch.setattr(dl, "urlopen", serve({info.archives[0].url: data}))
    root = tmp_path / "root"
    (root / "Tiny/HR").mkdir(parents=True)
    (root / "Tiny/HR/mine.png").write_bytes(b"user file")
    before = tree(root)
    with pytest.raises(SrlabError) as e:
        dl.download(["Tiny"], root, log=lambda _: None)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"tiny.zip from https://example.invalid/tiny.zip does not match its checksum "
                              f"(SHA256 {hashlib.sha256(data).hexdigest()}, expected {'0' * 64}")
    assert tree(root) == before and (root / "Tiny/HR/mine.png").read_bytes() == b"user file"


def test_md5_only_archive_is_checked_by_md5(tmp_path, monkeypatch):
    good, data = tiny_set(tmp_path)
    archive = dataclasses.replace(good.archives[0], sha256=None, size=None, md5=hashlib.md5(data).hexdigest())
    info = dataclasses.replace(good, archives=(archive,))
    use_catalog(monkeypatch, info)
    monkeypatch.setattr(dl, "urlopen", serve({archive.url: data}))
    assert dl.download(["Tiny"], tmp_path / "ok", log=lambda _: None) == [info]
    bad = dataclasses.replace(info, archives=(dataclasses.replace(archive, md5="f" * 32),))
    monkeypatch.setattr(catalog, "DATASETS", (*catalog.DATASETS[:-1], bad))
    with pytest.raises(SrlabError, match=f"MD5 {hashlib.md5(data).hexdigest()}, expected f{{32}}"):
        dl.download(["Tiny"], tmp_path / "bad", log=lambda _: None)
    assert not (tmp_path / "bad").exists()


def test_wrong_layout_in_a_correct_archive_installs_nothing(tmp_path, monkeypatch):
    info, data = tiny_set(tmp_path)
    # The catalog expects 4 images; the (checksum-correct) archive holds 3.
    info = dataclasses.replace(info, parts=(dataclasses.replace(info.parts[0], count=4),))
    use_catalog(monkeypatch, info)
    monkeypatch.setattr(dl, "urlopen", serve({info.archives[0].url: data}))
    root = tmp_path / "root"
    with pytest.raises(SrlabError, match=r"Tiny: the unpacked archives are not the expected layout \(1 problems, "
                                         r"first: <archive>/Tiny/HR: 3 HR images, expected 4\); nothing was installed"):
        dl.download(["Tiny"], root, log=lambda _: None)
    assert tree(root) == []


class _BrokenResponse(io.BytesIO):
    """A response that delivers its first bytes, then loses the connection."""

    status, headers = 200, email.message.Message()

    def read(self, n=-1):
        if self.tell() >= 1000:
            raise ConnectionResetError(104, "Connection reset by peer")
        return super().read(min(n, 1000 - self.tell()))


def test_interrupted_download_keeps_the_part_file_and_resumes_from_it(tmp_path, monkeypatch):
    info, data = tiny_set(tmp_path)
    use_catalog(monkeypatch, info)
    root = tmp_path / "root"
    monkeypatch.setattr(dl, "urlopen", lambda request, timeout=None: _BrokenResponse(data))
    part = root / ".srlab/downloads/tiny.zip.part"
    with pytest.raises(SrlabError, match=r"download of tiny.zip broke off after 1000 bytes \(.*Connection reset by "
                                         rf"peer\): run the same command again to resume from {re.escape(str(part))}"):
        dl.download(["Tiny"], root, log=lambda _: None)
    assert part.read_bytes() == data[:1000]
    assert tree(root) == [".srlab", ".srlab/downloads", ".srlab/downloads/tiny.zip.part"]
    requests = []
    monkeypatch.setattr(dl, "urlopen", serve({info.archives[0].url: data}, requests))
    dl.download(["Tiny"], root, log=lambda _: None)
    assert requests == [(info.archives[0].url, "bytes=1000-")]
    assert dl.verify(info, root) == [] and tree(root / ".srlab") == ["manifests", "manifests/Tiny.json"]


def test_benchmark_archive_is_shared_and_unsafe_members_are_refused(tmp_path, monkeypatch):
    src = tmp_path / "src"
    set5, set14 = catalog.get("Set5"), catalog.get("Set14")
    write_set(src / "benchmark", set5)
    write_set(src / "benchmark", set14, size=(30, 24))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as t:
        t.add(src / "benchmark", arcname="./benchmark")
    data = buffer.getvalue()
    md5 = hashlib.md5(data).hexdigest()
    patched = tuple(
        dataclasses.replace(d, archives=(dataclasses.replace(d.archives[0], md5=md5),))
        if d.name in ("Set5", "Set14") else d for d in catalog.DATASETS
    )
    monkeypatch.setattr(catalog, "DATASETS", patched)
    requests = []
    monkeypatch.setattr(dl, "urlopen", serve({catalog.BENCHMARK_URL: data}, requests))
    root = tmp_path / "root"
    dl.download(["Set5", "Set14"], root, scales=(4,), log=lambda _: None)
    assert len(requests) == 1  # one download for both sets
    assert dl.verify(set5, root, scales=(2, 3, 4)) == [] and dl.verify(set14, root, scales=(2, 3, 4)) == []
    assert sorted(p.name for p in root.iterdir()) == [".srlab", "Set14", "Set5"]

    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as t:
        info = tarfile.TarInfo("benchmark/Set5/../../escape.png")
        info.size = 3
        t.addfile(info, io.BytesIO(b"bad"))
    evil_data = evil.getvalue()
    patched = tuple(
        dataclasses.replace(d, archives=(dataclasses.replace(d.archives[0], md5=hashlib.md5(evil_data).hexdigest()),))
        if d.name == "Set5" else d for d in catalog.DATASETS
    )
    monkeypatch.setattr(catalog, "DATASETS", patched)
    monkeypatch.setattr(dl, "urlopen", serve({catalog.BENCHMARK_URL: evil_data}))
    with pytest.raises(SrlabError, match="unsafe member path 'benchmark/Set5/../../escape.png'"):
        dl.download(["Set5"], tmp_path / "evil", log=lambda _: None)
    assert tree(tmp_path / "evil") == [] and not (tmp_path / "escape.png").exists()


def test_offline_download_says_what_to_fetch_from_where_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "urlopen", offline)
    root = tmp_path / "data"
    with pytest.raises(SrlabError) as e:
        dl.download(["DIV2K"], root, scales=(2,), log=lambda _: None)
    message = str(e.value)
    assert "\n" not in message
    assert re.match(
        r"cannot download DIV2K_train_HR.zip from https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip "
        r"\(.*Temporary failure in name resolution\): offline\? fetch DIV2K_train_HR.zip, "
        r"DIV2K_train_LR_bicubic_X2.zip, DIV2K_valid_HR.zip, DIV2K_valid_LR_bicubic_X2.zip from "
        r"https://data.vision.ee.ethz.ch/cvl/DIV2K/ by hand into ", message), message
    assert f"into {root}/.srlab/downloads/ (srlab data download then checks and unpacks them)" in message
    assert f"{root}/DIV2K/DIV2K_train_HR/ and {root}/DIV2K/DIV2K_valid_HR/" in message
    assert not root.exists()


def test_an_archive_placed_by_hand_is_checked_and_used_offline(tmp_path, monkeypatch):
    info, data = tiny_set(tmp_path)
    use_catalog(monkeypatch, info)
    monkeypatch.setattr(dl, "urlopen", offline)
    root = tmp_path / "root"
    (root / ".srlab/downloads").mkdir(parents=True)
    (root / ".srlab/downloads/tiny.zip").write_bytes(data)
    dl.download(["Tiny"], root, keep_archives=True, log=lambda _: None)
    assert dl.verify(info, root) == [] and (root / ".srlab/downloads/tiny.zip").is_file()
    # Without --keep_archives the archive goes after a success, and stays after a failure.
    broken = dataclasses.replace(info, parts=(dataclasses.replace(info.parts[0], count=4),))
    monkeypatch.setattr(catalog, "DATASETS", (*catalog.DATASETS[:-1], broken))
    with pytest.raises(SrlabError, match="not the expected layout"):
        dl.download(["Tiny"], root, force=True, log=lambda _: None)
    assert (root / ".srlab/downloads/tiny.zip").is_file()
    monkeypatch.setattr(catalog, "DATASETS", (*catalog.DATASETS[:-1], info))
    dl.download(["Tiny"], root, force=True, log=lambda _: None)
    assert not (root / ".srlab/downloads").exists() and dl.verify(info, root) == []
    # A wrong file placed by hand is reported, not silently replaced.
    (root / ".srlab/downloads").mkdir()
    (root / ".srlab/downloads/tiny.zip").write_bytes(data[:-1])
    with pytest.raises(SrlabError, match=r"tiny.zip does not match the catalog \(\d+ bytes, expected \d+\): delete it"):
        dl.download(["Tiny"], root, force=True, log=lambda _: None)


def test_manga109_has_no_automatic_download(tmp_path):
    with pytest.raises(SrlabError, match=r"Manga109: no automatic download .*manga109.org.* put its images in "):
        dl.download(["Manga109"], tmp_path)


# ----------------------------------------------------------------------------------------------------
# Corrupt or hand-edited state files and archives
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [
    b"{not json", b"\xff\xfe\x00garbage", b"[]", b'{"archives": []}', b'{"files": ["Tiny/HR/img001.png"]}',
    b'{"files": {"Tiny/HR/img001.png": 3}}', b'{"files": {"../../outside.png": "00"}}',
    b'{"files": {"/etc/hostname": "00"}}', b'{"files": {"": "00"}}',
])
def test_a_corrupt_or_hostile_manifest_is_one_problem_line(tmp_path, monkeypatch, content):
    info, _ = tiny_set(tmp_path)
    root = tmp_path / "root"
    write_set(root, info, scales=(2,))
    manifest = dl.manifest_path(info, root)
    manifest.parent.mkdir(parents=True)
    manifest.write_bytes(content)
    assert dl.verify(info, root) == [f"{manifest}: unreadable manifest (delete it, or download Tiny again)"]


def test_a_download_replaces_a_corrupt_manifest(tmp_path, monkeypatch):
    info, data = tiny_set(tmp_path)
    use_catalog(monkeypatch, info)
    monkeypatch.setattr(dl, "urlopen", serve({info.archives[0].url: data}))
    root = tmp_path / "root"
    manifest = dl.manifest_path(info, root)
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"files": ["not", "an", "object"]}')
    assert dl.download(["Tiny"], root, log=lambda _: None) == [info]
    assert len(json.loads(manifest.read_text())["files"]) == 6 and dl.verify(info, root) == []


def _damaged(data: bytes, kind: str) -> bytes:
    if kind == "zip":  # a member's bytes changed, the directory intact: fails its CRC on extraction
        middle = bytearray(data)
        middle[200:260] = bytes(60)
        return bytes(middle)
    return data[: len(data) // 2]  # a tar cut in the middle of a member


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_corrupt_archive_with_a_matching_checksum_installs_nothing(tmp_path, monkeypatch, kind):
    """The catalog's checksum can only be checked where one is known; the archive itself may still be bad."""
    info, data = tiny_set(tmp_path, url=f"https://example.invalid/tiny.{kind}")
    if kind == "tar":
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as t:
            t.add(tmp_path / "src/Tiny", arcname="tiny/Tiny")
        data = buffer.getvalue()
    data = _damaged(data, kind)
    archive = dataclasses.replace(info.archives[0], size=len(data), sha256=hashlib.sha256(data).hexdigest())
    info = dataclasses.replace(info, archives=(archive,))
    use_catalog(monkeypatch, info)
    monkeypatch.setattr(dl, "urlopen", serve({archive.url: data}))
    root = tmp_path / "root"
    with pytest.raises(SrlabError, match=r"tiny\.(zip|tar): corrupt archive \(.+\): delete it and download it again"):
        dl.download(["Tiny"], root, log=lambda _: None)
    assert tree(root) == []
