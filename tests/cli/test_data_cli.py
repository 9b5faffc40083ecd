"""``srlab data list / verify / download`` end to end, in-process. Nothing touches the network: downloads
are served from local archives by a replaced URL opener.
"""

from __future__ import annotations

import dataclasses
import email.message
import hashlib
import io
import tarfile
import urllib.error
import urllib.response
from pathlib import Path

import numpy as np
from PIL import Image

from srlab.cli import main as main_mod
from srlab.data import catalog, download as dl
from conftest import BENCHMARKS, needs_benchmarks, photo


def srlab_data(capsys, *argv: str | Path) -> tuple[int, str, str]:
    """Run ``srlab data argv...``; returns (exit code, stdout, stderr)."""
    argv = [str(a) for a in argv]
    capsys.readouterr()
    try:
        code = main_mod.main(["data", *argv])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def write_benchmark(root: Path, name: str, count: int, size=(40, 28), scales=(2, 3, 4)) -> None:
    names = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
    (root / name / "HR").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        hr = Image.fromarray(photo(names[i % len(names)], size))
        hr.save(root / name / "HR" / f"im{i + 1}.png")
        for s in scales:
            lr_dir = root / name / "LR_bicubic" / f"X{s}"
            lr_dir.mkdir(parents=True, exist_ok=True)
            hr.resize((size[0] // s, size[1] // s), Image.BICUBIC).save(lr_dir / f"im{i + 1}x{s}.png")


def benchmark_tar(tmp_path: Path) -> bytes:
    """A benchmark.tar look-alike: benchmark/Set5/{HR,LR_bicubic/X2..X4}."""
    src = tmp_path / "src"
    write_benchmark(src / "benchmark", "Set5", 5)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as t:
        t.add(src / "benchmark", arcname="benchmark")
    return buffer.getvalue()


def serve(files: dict[str, bytes]):
    def opener(request, timeout=None):
        body = files[request.full_url]
        headers = email.message.Message()
        headers["Content-Length"] = str(len(body))
        return urllib.response.addinfourl(io.BytesIO(body), headers, request.full_url, 200)

    return opener


def offline(request, timeout=None):
    raise urllib.error.URLError(OSError(101, "Network is unreachable"))


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_list_shows_the_catalog_and_the_status_under_a_root(capsys, tmp_path):
    code, out, _ = srlab_data(capsys, "list")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert list(rows) == ["DIV2K", "Flickr2K", "Set5", "Set14", "B100", "Urban100", "Manga109"]
    assert rows["DIV2K"].split()[2] == "900" and "data.vision.ee.ethz.ch" in rows["DIV2K"]
    assert rows["Set5"].endswith("https://cv.snu.ac.kr/research/EDSR/benchmark.tar")
    assert "manga109.org" in rows["Manga109"]

    write_benchmark(tmp_path, "Set5", 5, scales=(2, 4))
    write_benchmark(tmp_path, "Set14", 3, scales=(2,))  # 3 of 14
    code, out, _ = srlab_data(capsys, "list", "--root", tmp_path)
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[1:-1]}
    assert rows["Set5"].split()[3] == "present" and rows["Set5"].endswith("test 5/5 HR, LR X2 5 X3 - X4 5")
    assert rows["Set14"].split()[3] == "partial" and rows["Set14"].endswith("test 3/14 HR, LR X2 3 X3 - X4 -")
    assert rows["DIV2K"].split()[3] == "missing" and "train 0/800 HR" in rows["DIV2K"]

    code, out, _ = srlab_data(capsys, "list", "--details")
    assert "sha256 9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335" in out
    assert "md5 4ace41d33c2384b97e6b320cd0afd6ba (sha256 unknown)" in out


@needs_benchmarks
def test_verify_the_shared_benchmarks(capsys):
    code, out, err = srlab_data(capsys, "verify", "--root", BENCHMARKS)
    assert code == 0, out + err
    assert out.splitlines() == ["Set5      OK    test 5/5 HR, LR X2 5 X3 5 X4 5",
                                "Set14     OK    test 14/14 HR, LR X2 14 X3 14 X4 14"]
    code, out, _ = srlab_data(capsys, "verify", "--root", BENCHMARKS, "Set5", "Set14", "--scale", "4")
    assert code == 0 and out.count(" OK ") == 2


def test_verify_fails_with_one_line_per_problem(capsys, tmp_path):
    write_benchmark(tmp_path, "Set5", 5)
    assert srlab_data(capsys, "verify", "--root", tmp_path, "Set5", "--scale", "2")[0] == 0

    (tmp_path / "Set5/LR_bicubic/X2/im2x2.png").unlink()  # a missing file
    Image.fromarray(np.zeros((9, 14, 3), np.uint8)).save(tmp_path / "Set5/LR_bicubic/X3/im4x3.png")  # wrong size
    code, out, _ = srlab_data(capsys, "verify", "--root", tmp_path)
    assert code == 1
    assert out.splitlines() == [
        f"Set5: {tmp_path}/Set5/LR_bicubic/X2: no LR image for im2.png (expected im2x2.png)",
        f"Set5: {tmp_path}/Set5/LR_bicubic/X3/im4x3.png: 14x9, expected 13x9 (HR im4.png 40x28 at x3)",
        "Set5      FAIL  2 problem(s)",
    ]

    (tmp_path / "Set5/HR/im5.png").unlink()  # a wrong count
    code, out, _ = srlab_data(capsys, "verify", "--root", tmp_path, "Set5")
    assert code == 1 and f"Set5: {tmp_path}/Set5/HR: 4 HR images, expected 5" in out.splitlines()

    code, out, _ = srlab_data(capsys, "verify", "--root", tmp_path, "B100")  # asked for, absent
    assert code == 1 and out.splitlines()[0] == f"B100: {tmp_path}/B100/HR: missing (expected 100 HR images)"


def test_verify_and_download_user_errors(capsys, tmp_path):
    code, _, err = srlab_data(capsys, "verify", "--root", tmp_path, "Set6")
    assert code == 2 and err.startswith("srlab: error: unknown data set 'Set6': choose from DIV2K, Flickr2K")
    code, _, err = srlab_data(capsys, "verify", "--root", tmp_path / "nowhere")
    assert code == 2 and "does not exist" in err
    code, _, err = srlab_data(capsys, "verify", "--root", tmp_path)
    assert code == 2 and "no known data set under" in err
    code, _, err = srlab_data(capsys, "download", "Set5", "--root", tmp_path, "--scale", "8")
    assert code == 2 and "Set5 has no x8 LR images" in err
    code, _, err = srlab_data(capsys, "download", "--root", tmp_path)
    assert code == 2 and err.count("\n") == 1  # argparse: NAME is required, one line


def test_download_offline_fails_cleanly(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "urlopen", offline)
    root = tmp_path / "data"
    root.mkdir()
    code, out, err = srlab_data(capsys, "download", "Set14", "--root", root)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(
        "srlab: error: cannot download benchmark.tar from https://cv.snu.ac.kr/research/EDSR/benchmark.tar "
        "([Errno 101] Network is unreachable): offline? fetch benchmark.tar from https://cv.snu.ac.kr/research/EDSR/ "
        f"by hand into {root}/.srlab/downloads/"
    ), err
    assert f"or unpack Set14 yourself into {root}/Set14/HR/" in err
    assert tree(root) == []


def test_download_checksum_failure_then_success(capsys, tmp_path, monkeypatch):
    data = benchmark_tar(tmp_path)
    monkeypatch.setattr(dl, "urlopen", serve({catalog.BENCHMARK_URL: data}))
    root = tmp_path / "data"
    # The catalog's MD5 is that of the real benchmark.tar: the look-alike fails it, and nothing is left.
    code, _, err = srlab_data(capsys, "download", "Set5", "--root", root, "--quiet")
    assert code == 2 and err.count("\n") == 1
    assert f"MD5 {hashlib.md5(data).hexdigest()}, expected {catalog.BENCHMARK_MD5}" in err
    assert not root.exists()

    md5 = hashlib.md5(data).hexdigest()
    monkeypatch.setattr(catalog, "DATASETS", tuple(
        dataclasses.replace(d, archives=(dataclasses.replace(d.archives[0], md5=md5),)) if d.name == "Set5" else d
        for d in catalog.DATASETS
    ))
    code, out, err = srlab_data(capsys, "download", "set5", "--root", root, "--quiet")
    assert code == 0, err
    assert out.splitlines()[-1] == f"Set5: installed under {root} (test 5/5 HR, LR X2 5 X3 5 X4 5)"
    assert tree(root / ".srlab") == ["manifests", "manifests/Set5.json"]
    code, out, _ = srlab_data(capsys, "verify", "--root", root)
    assert code == 0 and out.splitlines() == ["Set5      OK    test 5/5 HR, LR X2 5 X3 5 X4 5"]
    # Checksums recorded at download time catch a changed file.
    (root / "Set5/HR/im1.png").write_bytes((root / "Set5/HR/im2.png").read_bytes())
    code, out, _ = srlab_data(capsys, "verify", "--root", root)
    assert code == 1 and f"Set5: {root}/Set5/HR/im1.png: SHA-256 differs from the downloaded file" in out
    assert srlab_data(capsys, "verify", "--root", root, "--skip_checksums")[0] == 0
