"""`srlab weights list|download|verify`: the registry as a table, a checked cache, one-line errors."""

from conftest import OFFICIAL_WEIGHTS, needs_weights, run_cli
from srlab.models import official


def _row(out: str, key: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.startswith(key + " "))


def test_list_shows_licence_input_range_and_status(offline_home, capsys):
    code, out, err = run_cli(capsys, "weights", "list")
    assert code == 0 and err == ""
    assert out.splitlines()[0].split() == ["name", "model", "scale", "MB", "input", "status", "licence"]
    assert _row(out, "bsrn_x4") == ["bsrn_x4", "bsrn", "x4", "1.52", "[0,", "1]", "bundled", "MIT"]
    assert _row(out, "rlfn_x4")[4:7] == ["[0,", "255]", "-"]
    assert _row(out, "imdn_x2")[6:] == ["-", "none", "stated"]
    assert len([line for line in out.splitlines() if line.split()[0] in {e.key for e in official.entries()}]) == len(official.entries()) == 65
    assert f"(cache: {offline_home / 'weights'};" in out


def test_list_details_give_url_and_checksum(offline_home, capsys):
    code, out, _ = run_cli(capsys, "weights", "list", "--details")
    entry = official.get("ecbsr_etds_m4c32_x3")
    assert code == 0 and f"    {entry.url}\n    sha256 {entry.sha256}; args {{'channels': 32}};" in out


@needs_weights
def test_download_from_a_mirror_then_verify(offline_home, capsys):
    code, out, err = run_cli(capsys, "weights", "download", "rlfn", "--from", OFFICIAL_WEIGHTS)
    assert code == 0 and err == ""
    assert [line.split()[:2] for line in out.splitlines() if " OK " in line] == [["rlfn_x2", "OK"], ["rlfn_x4", "OK"]]
    assert (offline_home / "weights" / "rlfn" / "rlfn_x2.pth").is_file()
    assert _row(run_cli(capsys, "weights", "list")[1], "rlfn_x4")[6] == "cached"

    code, out, _ = run_cli(capsys, "weights", "verify")
    assert code == 0 and [line.split()[:2] for line in out.splitlines()] == [["rlfn_x2", "OK"], ["rlfn_x4", "OK"]]

    (offline_home / "weights" / "rlfn" / "rlfn_x4.pth").write_bytes(b"changed")
    code, out, _ = run_cli(capsys, "weights", "verify", "rlfn_x4", "bsrn_x2")
    assert code == 1
    assert "rlfn_x4                  FAIL " in out and "7 bytes, expected 2212893 (run `srlab weights download rlfn_x4`)" in out
    assert "bsrn_x2                  FAIL " in out and "net_g_BSRN_x2.pth: missing" in out


def test_download_offline_is_one_line_per_release(offline_home, capsys):
    code, out, err = run_cli(capsys, "weights", "download", "etds_t_x2", "etds_t_x3")
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("srlab: error: official etds_t_x") for line in lines)
    assert "cannot be downloaded" in lines[0] and "https://raw.githubusercontent.com/ECNUSR/ETDS/" in lines[0]


def test_bad_names_and_folders_are_usage_errors(offline_home, tmp_path, capsys):
    code, _, err = run_cli(capsys, "weights", "download", "bsrn_x9")
    assert code == 2 and err == "srlab: error: no official weights called 'bsrn_x9': give a name or model of " \
                                "`srlab weights list`\n"
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(capsys, "weights", "download", "etds_t_x2", "--from", tmp_path / "file")
    assert code == 2 and err.count("\n") == 1 and "--from '" in err and "is not a folder" in err
    code, _, err = run_cli(capsys, "weights", "verify")
    assert code == 2 and err.startswith("srlab: error: no official weights in ") and "srlab weights download NAME" in err
