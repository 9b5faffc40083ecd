"""Checking the standard data sets under a data root, and downloading them.

Status and verification (no network):

- :func:`status` counts the images of each part (HR, and LR per scale): present / partial / missing.
- :func:`verify` checks the layout :func:`srlab.data.datasets.discover_pairs` reads: HR image counts (and
  the exact names where the set fixes them), one LR image per HR image and scale, LR size = HR size // scale
  (the HR image mod-cropped), no stray LR files, and the SHA-256 of every file against the manifest the
  download wrote (when there is one). It returns one line per problem.

Download (:func:`download`), all-or-nothing per data set:

1. Each archive is fetched into ``ROOT/.srlab/downloads/NAME.part``; an interrupted transfer is resumed
   from there (HTTP Range) on the next run. Its size and checksums (those the catalog knows) are checked
   before the ``.part`` is renamed to its final name; a mismatch deletes it. An archive already in that
   folder (e.g. copied there by hand on an offline machine) is checked and used.
2. The archives are unpacked into a hidden staging folder under the root, which is verified like a
   finished data set. Only then are the folders moved into place (one rename each), and the manifest
   (SHA-256 of the archives and of every file) is written atomically. On any failure the staging folder
   is deleted: the root holds the complete data set or what it held before.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from srlab.data import catalog
from srlab.data.catalog import Archive, DatasetInfo, Part
from srlab.data.io import IMAGE_EXTENSIONS
from srlab.errors import SrlabError
from srlab.fileio import atomic_path

__all__ = ["PartStatus", "SetStatus", "status", "verify", "download", "fetch", "manifest_path", "urlopen"]

# The URL opener; tests replace it (monkeypatch) to serve local files or to act offline.
urlopen = urllib.request.urlopen

STATE_DIR = ".srlab"
CHUNK = 1 << 20
MAX_LINES_PER_FOLDER = 10  # problems listed one by one per folder before a summary line
TIMEOUT_S = 60


# ----------------------------------------------------------------------------------------------------
# Status and verification
# ----------------------------------------------------------------------------------------------------


def _images(folder: Path) -> dict[str, Path]:
    """{stem: path} of the image files in ``folder`` (hidden files skipped); {} when it is absent."""
    if not folder.is_dir():
        return {}
    found = {}
    for entry in folder.iterdir():
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if entry.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS:
            found[entry.stem] = entry
    return found


@dataclass(frozen=True)
class PartStatus:
    part: Part
    hr: int  # HR images found
    lr: dict[int, int | None]  # scale -> LR images found, None when the LR folder is absent

    @property
    def complete(self) -> bool:
        return self.hr == self.part.count and all(n in (None, self.part.count) for n in self.lr.values())

    def describe(self) -> str:
        lr = " ".join(f"X{s} {'-' if n is None else n}" for s, n in self.lr.items())
        return f"{self.part.name} {self.hr}/{self.part.count} HR, LR {lr}"


@dataclass(frozen=True)
class SetStatus:
    info: DatasetInfo
    parts: tuple[PartStatus, ...]

    @property
    def state(self) -> str:
        if all(p.complete for p in self.parts):
            return "present"
        if all(p.hr == 0 and all(not n for n in p.lr.values()) for p in self.parts):
            return "missing"
        return "partial"

    def describe(self) -> str:
        return "; ".join(p.describe() for p in self.parts)


def status(info: DatasetInfo, root: str | Path) -> SetStatus:
    """Image counts of ``info`` under ``root`` (cheap: no image is opened)."""
    root = Path(root)
    parts = []
    for part in info.parts:
        lr = {}
        for scale in info.scales:
            folder = root / part.lr_path(scale)
            lr[scale] = len(_images(folder)) if folder.is_dir() else None
        parts.append(PartStatus(part, len(_images(root / part.hr_dir)), lr))
    return SetStatus(info, tuple(parts))


def _size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header, or SrlabError if it is not a readable image."""
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as e:
        raise SrlabError(f"{path}: not a readable image ({' '.join(str(e).split())})") from None


class _Problems:
    """Collects problem lines, at most MAX_LINES_PER_FOLDER per folder, then one summary line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._per_folder: dict[Path, int] = {}

    def add(self, folder: Path, line: str) -> None:
        n = self._per_folder.get(folder, 0) + 1
        self._per_folder[folder] = n
        if n <= MAX_LINES_PER_FOLDER:
            self.lines.append(line)

    def finish(self) -> list[str]:
        for folder, n in self._per_folder.items():
            if n > MAX_LINES_PER_FOLDER:
                self.lines.append(f"{folder}: {n - MAX_LINES_PER_FOLDER} more problems in this folder")
        return self.lines


def _first(names: Iterable[str], n: int = 3) -> str:
    names = sorted(names)
    shown = ", ".join(names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


def verify(
    info: DatasetInfo, root: str | Path, *, scales: Sequence[int] = (), checksums: bool = True
) -> list[str]:
    """Problems with ``info`` under ``root``, one line each; [] when it is complete and consistent.

    LR folders are checked where they exist; ``scales`` names the scales whose LR folders must exist.
    """
    root = Path(root)
    problems = _Problems()
    for scale in scales:
        if scale not in info.scales:
            raise SrlabError(
                f"{info.name} has no x{scale} LR images: choose a scale among {', '.join(map(str, info.scales))}"
            )
    for part in info.parts:
        hr_dir = root / part.hr_dir
        if not hr_dir.is_dir():
            problems.add(hr_dir, f"{hr_dir}: missing (expected {part.count} HR images)")
            continue
        hr = _images(hr_dir)
        if len(hr) != part.count:
            problems.add(hr_dir, f"{hr_dir}: {len(hr)} HR images, expected {part.count}")
        if part.stems:
            absent = set(part.stems) - set(hr)
            unexpected = set(hr) - set(part.stems)
            if absent:
                problems.add(hr_dir, f"{hr_dir}: missing {_first(absent)}")
            if unexpected:
                problems.add(hr_dir, f"{hr_dir}: unexpected {_first(unexpected)}")
        sizes: dict[str, tuple[int, int]] = {}
        for stem, path in sorted(hr.items()):
            try:
                sizes[stem] = _size(path)
            except SrlabError as e:
                problems.add(hr_dir, str(e))
        for scale in info.scales:
            lr_dir = root / part.lr_path(scale)
            if not lr_dir.is_dir():
                if scale in scales:
                    problems.add(lr_dir, f"{lr_dir}: missing (expected {part.count} x{scale} LR images)")
                continue
            _verify_lr(lr_dir, scale, hr, sizes, problems)
    lines = problems.finish()
    if checksums:
        lines += _verify_manifest(info, root)
    return lines


def _verify_lr(lr_dir: Path, scale: int, hr: dict[str, Path], sizes: dict[str, tuple[int, int]],
               problems: _Problems) -> None:
    lr = _images(lr_dir)
    used = set()
    for stem in sorted(hr):
        name = f"{stem}x{scale}" if f"{stem}x{scale}" in lr else stem
        if name not in lr:
            problems.add(lr_dir, f"{lr_dir}: no LR image for {hr[stem].name} (expected {stem}x{scale}.png)")
            continue
        used.add(name)
        if stem not in sizes:
            continue
        try:
            width, height = _size(lr[name])
        except SrlabError as e:
            problems.add(lr_dir, str(e))
            continue
        hr_w, hr_h = sizes[stem]
        if (width, height) != (hr_w // scale, hr_h // scale):
            problems.add(
                lr_dir,
                f"{lr[name]}: {width}x{height}, expected {hr_w // scale}x{hr_h // scale} "
                f"(HR {hr[stem].name} {hr_w}x{hr_h} at x{scale})",
            )
    stray = set(lr) - used
    if stray:
        problems.add(lr_dir, f"{lr_dir}: LR images without an HR image: {_first(stray)}")


def manifest_path(info: DatasetInfo, root: str | Path) -> Path:
    return Path(root) / STATE_DIR / "manifests" / f"{info.name}.json"


def _sha256(path: Path) -> str:
    return _hashes(path, ("sha256",))["sha256"]


def _hashes(path: Path, algorithms: Sequence[str]) -> dict[str, str]:
    digests = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            for d in digests.values():
                d.update(block)
    return {a: d.hexdigest() for a, d in digests.items()}


def _manifest_files(path: Path) -> dict[str, str] | None:
    """The manifest's {relative path: SHA-256}; None when it is not one (corrupt or edited by hand).

    A listed path that is absolute or climbs out of the root (``..``) makes it invalid too: verifying
    would read a file outside the data root."""
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError):  # bad JSON or UTF-8, no "files", not an object
        return None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return None
    for rel in files:
        parts = PurePosixPath(rel).parts
        if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
            return None
    return files


def _verify_manifest(info: DatasetInfo, root: Path) -> list[str]:
    path = manifest_path(info, root)
    if not path.is_file():
        return []
    files = _manifest_files(path)
    if files is None:
        return [f"{path}: unreadable manifest (delete it, or download {info.name} again)"]
    problems = _Problems()
    for rel, expected in sorted(files.items()):
        file = root / rel
        if not file.is_file():
            problems.add(file.parent, f"{file}: missing (listed in {path.name})")
        elif _sha256(file) != expected.lower():
            problems.add(file.parent, f"{file}: SHA-256 differs from the downloaded file ({path.name}): "
                                      "changed or corrupt")
    return problems.finish()


# ----------------------------------------------------------------------------------------------------
# Download
# ----------------------------------------------------------------------------------------------------


def _where_to_put(info: DatasetInfo, root: Path) -> str:
    hr = " and ".join(f"{root / p.hr_dir}/" for p in info.parts)
    lr = " and ".join(f"{root / p.lr_dir}" for p in info.parts)
    return f"{hr} (LR images, optional, in {lr})"


def _offline_message(archive: Archive, info: DatasetInfo, root: Path, reason: object,
                     needed: Sequence[Archive]) -> str:
    reason = " ".join(str(reason).split())
    needed = needed or (archive,)
    bases = {a.url.rsplit("/", 1)[0] for a in needed}
    if len(bases) == 1:
        what = f"{', '.join(a.filename for a in needed)} from {bases.pop()}/"
    else:
        what = ", ".join(a.url for a in needed)
    return (
        f"cannot download {archive.filename} from {archive.url} ({reason}): offline? fetch {what} by hand "
        f"into {root / STATE_DIR / 'downloads'}/ (srlab data download then checks and unpacks "
        f"{'them' if len(needed) > 1 else 'it'}), or unpack {info.name} yourself into {_where_to_put(info, root)}"
    )


def _check_archive(path: Path, archive: Archive) -> str | None:
    """None if ``path`` matches the catalog's size and checksums, else what differs."""
    size = path.stat().st_size
    if archive.size is not None and size != archive.size:
        return f"{size} bytes, expected {archive.size}"
    wanted = {a: h for a, h in (("sha256", archive.sha256), ("md5", archive.md5)) if h}
    got = _hashes(path, tuple(wanted) or ("sha256",))
    for algorithm, expected in wanted.items():
        if got[algorithm] != expected.lower():
            return f"{algorithm.upper()} {got[algorithm]}, expected {expected}"
    return None


def fetch(
    archive: Archive, info: DatasetInfo, root: str | Path, *, progress: bool = False,
    log: Callable[[str], None] = print, needed: Sequence[Archive] = (),
) -> Path:
    """``ROOT/.srlab/downloads/<file>``, downloaded (or resumed) and checked against the catalog."""
    root = Path(root)
    downloads = root / STATE_DIR / "downloads"
    target = downloads / archive.filename
    if target.is_file():
        wrong = _check_archive(target, archive)
        if wrong:
            raise SrlabError(
                f"{target} does not match the catalog ({wrong}): delete it (a different or corrupt file) "
                "and run the download again"
            )
        log(f"{archive.filename}: using the checked copy in {downloads}")
        return target
    partial = downloads / f"{archive.filename}.part"
    offset = partial.stat().st_size if partial.is_file() else 0
    headers = {"User-Agent": "srlab-data/1"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(archive.url, headers=headers)
    try:
        response = urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to fetch: the .part is complete (checked below)
            response = None
        else:
            raise SrlabError(f"cannot download {archive.filename} from {archive.url}: HTTP {e.code} {e.reason} "
                             f"(the server refused; try later, or fetch it by hand into {downloads})") from None
    except (urllib.error.URLError, socket.timeout, OSError) as e:
        reason = getattr(e, "reason", e)
        raise SrlabError(_offline_message(archive, info, root, reason, needed)) from None
    if response is not None:
        with response:
            code = getattr(response, "status", None) or response.getcode() or 200
            append = bool(offset) and code == 206
            total = response.headers.get("Content-Length") if getattr(response, "headers", None) else None
            total = int(total) + (offset if append else 0) if total and total.isdigit() else archive.size
            downloads.mkdir(parents=True, exist_ok=True)
            log(f"downloading {archive.url}" + (f" (resuming at {offset} bytes)" if append else ""))
            _stream(response, partial, append=append, total=total, progress=progress, name=archive.filename,
                    archive=archive, info=info, root=root)
    wrong = _check_archive(partial, archive)
    if wrong:
        partial.unlink(missing_ok=True)
        _prune_empty(downloads)
        raise SrlabError(
            f"{archive.filename} from {archive.url} does not match its checksum ({wrong}; "
            f"checksum source: {archive.checksum_source}): deleted it; run the download again, and if it "
            "fails again the server's file has changed"
        )
    os.replace(partial, target)
    return target


def _stream(response, partial: Path, *, append: bool, total: int | None, progress: bool, name: str,
            archive: Archive, info: DatasetInfo, root: Path) -> None:
    from tqdm import tqdm

    done = partial.stat().st_size if append else 0
    try:
        with open(partial, "ab" if append else "wb") as out, tqdm(
            total=total, initial=done, unit="B", unit_scale=True, desc=name, disable=not progress, leave=False
        ) as bar:
            while block := response.read(CHUNK):
                out.write(block)
                bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as e:  # keep the .part
        size = partial.stat().st_size if partial.exists() else 0
        raise SrlabError(
            f"download of {name} broke off after {size} bytes ({' '.join(str(getattr(e, 'reason', e)).split())}): "
            f"run the same command again to resume from {partial}"
        ) from None


def _member_dest(name: str, archive: Archive) -> str | None:
    """Where archive member ``name`` goes under the staging root, or None (not wanted)."""
    path = PurePosixPath(name.replace("\\", "/"))
    parts = [p for p in path.parts if p not in ("", ".")]
    if path.is_absolute() or ".." in parts:
        raise SrlabError(f"{archive.filename}: unsafe member path '{name}': refusing to unpack this archive")
    for extract in archive.extract:
        source = [p for p in PurePosixPath(extract.source).parts if p != "."]
        if parts[: len(source)] == source and len(parts) > len(source):
            if parts[-1].startswith("."):  # macOS metadata and the like
                return None
            return str(PurePosixPath(extract.dest, *parts[len(source):]))
    return None


def _unpack(path: Path, archive: Archive, staging: Path) -> None:
    try:
        written = _extract(path, archive, staging)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as e:
        raise SrlabError(
            f"{path}: corrupt archive ({' '.join(str(e).split())}): delete it and download it again"
        ) from None
    if not written:
        sources = ", ".join(e.source for e in archive.extract)
        raise SrlabError(f"{path}: no files under {sources}: not the expected archive (delete it)")


def _extract(path: Path, archive: Archive, staging: Path) -> int:
    """Unpack the wanted members into ``staging``; returns how many files were written."""
    written = 0
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for member in z.infolist():
                if member.is_dir() or (dest := _member_dest(member.filename, archive)) is None:
                    continue
                out = staging / dest
                out.parent.mkdir(parents=True, exist_ok=True)
                with z.open(member) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                written += 1
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as t:
            for member in t:
                if not member.isfile() or (dest := _member_dest(member.name, archive)) is None:
                    continue
                out = staging / dest
                out.parent.mkdir(parents=True, exist_ok=True)
                src = t.extractfile(member)
                with src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                written += 1
    else:
        raise SrlabError(f"{path}: neither a zip nor a tar archive: delete it and download it again")
    return written


def _prune_empty(folder: Path) -> None:
    """Remove ``folder`` if it is empty, and then the root's state folder above it if that is empty."""
    chain = [folder]
    if folder.parent.name == STATE_DIR:
        chain.append(folder.parent)
    for current in chain:
        try:
            current.rmdir()
        except OSError:
            return


def _hash_tree(folder: Path) -> dict[str, str]:
    hashes = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            file = Path(dirpath, name)
            hashes[file.relative_to(folder).as_posix()] = _sha256(file)
    return hashes


@dataclass
class _Downloaded:
    paths: dict[str, Path] = field(default_factory=dict)  # url -> checked archive
    computed: dict[str, dict[str, str]] = field(default_factory=dict)  # url -> {"sha256": ..}
    placed: set[str] = field(default_factory=set)  # urls whose archive was already in the downloads folder


def download(
    names: Sequence[str], root: str | Path, *, scales: Sequence[int] = (), keep_archives: bool = False,
    force: bool = False, progress: bool = False, log: Callable[[str], None] = print,
) -> list[DatasetInfo]:
    """Download, check and unpack the data sets ``names`` under ``root``; returns those installed.

    ``scales``: LR scales wanted (default: all the set has). A set already complete for them is skipped
    unless ``force``. Archives are deleted after unpacking unless ``keep_archives`` (after a failure, an
    archive that was already in ``ROOT/.srlab/downloads`` before this call is kept).
    """
    root = Path(root)
    infos = [catalog.get(n) for n in dict.fromkeys(names)]
    for info in infos:
        if info.manual:
            raise SrlabError(f"{info.name}: {info.manual}, and put its images in {_where_to_put(info, root)}")
        for scale in scales:
            if scale not in info.scales:
                raise SrlabError(f"{info.name} has no x{scale} LR images: choose among "
                                 f"{', '.join(map(str, info.scales))}")
    if root.exists() and not root.is_dir():
        raise SrlabError(f"--root '{root}' is a file: give a folder")
    wanted_scales = tuple(scales) or None
    root_existed = root.exists()
    installed, done, succeeded = [], _Downloaded(), False
    try:
        for info in infos:
            needed = tuple(scales)
            if not force and status(info, root).state != "missing" and not verify(info, root, scales=needed):
                log(f"{info.name}: already present and verified under {root}")
                continue
            archives = info.archives_for(wanted_scales)
            for archive in archives:
                if archive.url not in done.paths:
                    if (root / STATE_DIR / "downloads" / archive.filename).is_file():
                        done.placed.add(archive.url)  # put there by hand or kept: not deleted on failure
                    path = fetch(archive, info, root, progress=progress, log=log, needed=archives)
                    done.paths[archive.url] = path
                    done.computed[archive.url] = _hashes(path, ("sha256", "md5"))
            _install(info, root, archives, done, needed)
            installed.append(info)
            log(f"{info.name}: installed under {root} ({status(info, root).describe()})")
        succeeded = True
    finally:
        if not keep_archives:
            for url, path in done.paths.items():
                if succeeded or url not in done.placed:
                    path.unlink(missing_ok=True)
            _prune_empty(root / STATE_DIR / "downloads")
        if not root_existed:  # a failed first download leaves no empty root behind
            _prune_empty(root / STATE_DIR)
            try:
                root.rmdir()
            except OSError:
                pass
    return installed


def _install(info: DatasetInfo, root: Path, archives: Sequence[Archive], done: _Downloaded,
             scales: Sequence[int]) -> None:
    state = root / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"staging-{info.name}-", dir=state))
    try:
        for archive in archives:
            _unpack(done.paths[archive.url], archive, staging)
        problems = verify(info, staging, scales=scales, checksums=False)
        if problems:
            shown = problems[0].replace(str(staging), "<archive>")
            raise SrlabError(
                f"{info.name}: the unpacked archives are not the expected layout ({len(problems)} problems, "
                f"first: {shown}); nothing was installed"
            )
        files = _hash_tree(staging)
        dests = list(dict.fromkeys(e.dest for a in archives for e in a.extract if (staging / e.dest).exists()))
        manifest = manifest_path(info, root)
        old_files = (_manifest_files(manifest) if manifest.is_file() else None) or {}  # a bad one is replaced
        for dest in dests:
            final = root / dest
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # replaced as a whole: move the old folder aside, then drop it
                old = Path(tempfile.mkdtemp(prefix="old-", dir=state)) / "x"
                os.replace(final, old)
                os.replace(staging / dest, final)
                shutil.rmtree(old.parent, ignore_errors=True)
            else:
                os.replace(staging / dest, final)
        kept = {k: v for k, v in old_files.items()
                if not any(k == d or k.startswith(d.rstrip("/") + "/") for d in dests)}
        record = {
            "name": info.name,
            "archives": [{"url": a.url, **done.computed[a.url]} for a in archives],
            "files": dict(sorted({**kept, **files}.items())),
        }
        manifest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(manifest) as tmp:
            tmp.write_text(json.dumps(record, indent=1) + "\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _prune_empty(state)
