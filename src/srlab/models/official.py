"""The official checkpoints srlab loads: where the authors released them, their checksums, a local cache.

The registry is data, ``srlab/weights/official.json``: one entry per (model, scale, hyper-parameters)
with the release URL (pinned to a commit of the authors' repository), file name, size, SHA-256, licence
and the input convention of the official code (srlab's models take [0, 1] whatever the weights expect).

Files live in the cache ``$SRLAB_HOME/weights/<folder>/<file>`` (default ``~/.cache/srlab``), the
layout of a mirror such as ``../shared/official-weights``. :func:`fetch` puts a file there, downloaded
(to a ``.part`` beside it, renamed once its size and SHA-256 match) or copied from a local mirror, and
checks a file already there; offline, its error says what to fetch from where and where to put it.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import os
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from srlab.errors import SrlabError
from srlab.fileio import atomic_path
from srlab.models.registry import model_entry

__all__ = ["OfficialWeights", "entries", "get", "select", "find", "srlab_home", "cache_path", "problem", "fetch",
           "releases_of"]

# The URL opener; tests replace it (monkeypatch) to serve local files or to act offline.
urlopen = urllib.request.urlopen

CHUNK = 1 << 20
TIMEOUT_S = 60


@dataclass(frozen=True)
class OfficialWeights:
    key: str  # what `srlab weights` calls it: <model>_x<scale>, with a variant tag where a model has several
    model: str
    scale: int
    args: Mapping[str, Any]  # hyper-parameters the weights need beyond the model's defaults
    file: str  # name in the cache and in a mirror
    folder: str
    size: int
    sha256: str
    repo: str  # owner/name on GitHub
    commit: str
    path: str  # in the repository
    url: str
    licence: str
    input_range: str  # of the official code; srlab's model converts from [0, 1] inside forward
    bundled: bool  # srlab ships these weights converted (create_model(..., pretrained=True))
    notes: str


@functools.cache
def entries() -> tuple[OfficialWeights, ...]:
    text = (resources.files("srlab") / "weights" / "official.json").read_text(encoding="utf-8")
    return tuple(OfficialWeights(**raw) for raw in json.loads(text)["weights"])


def get(key: str) -> OfficialWeights:
    for entry in entries():
        if entry.key == key:
            return entry
    raise SrlabError(f"no official weights called {key!r}: see `srlab weights list` for the names")


def select(names: list[str] | tuple[str, ...]) -> list[OfficialWeights]:
    """Entries named by key (``bsrn_x4``) or by model (``bsrn``: all its scales), each once."""
    chosen = []
    for name in names:
        matched = [e for e in entries() if name in (e.key, e.model)]
        if not matched:
            raise SrlabError(f"no official weights called {name!r}: give a name or model of `srlab weights list`")
        chosen += [e for e in matched if e not in chosen]
    return chosen


def find(model: str, scale: int, args: Mapping[str, Any] | None = None) -> OfficialWeights:
    """The entry for (model, scale) whose hyper-parameters are ``args`` (none: the model's defaults)."""
    args = dict(args or {})
    candidates = [e for e in entries() if e.model == model and e.scale == scale]
    if candidates:
        defaults = model_entry(model).defaults()
        for entry in candidates:
            if {**defaults, **entry.args} == {**defaults, **args}:
                return entry
        variants = "; ".join(f"{e.key}: {dict(e.args) or 'defaults'}" for e in candidates)
        raise SrlabError(f"no official {model} x{scale} weights for hyper-parameters {args}: released are {variants}")
    scales = sorted({e.scale for e in entries() if e.model == model})
    if scales:
        raise SrlabError(f"the official {model} weights are for x{', x'.join(map(str, scales))}, not x{scale}")
    raise SrlabError(f"no official weights for model {model!r} in srlab's registry (see `srlab weights list`)")


def releases_of(path: str | Path) -> list[OfficialWeights]:
    """The registry's entries whose file ``path`` is (size, then SHA-256): several for one file that
    serves several scales (CARN-M), none for any other file."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        return []
    sized = [e for e in entries() if e.size == size]
    if not sized:
        return []
    sha = _sha256(path)
    return [e for e in sized if e.sha256 == sha]


def srlab_home() -> Path:
    return Path(os.environ.get("SRLAB_HOME") or Path.home() / ".cache" / "srlab").expanduser()


def cache_path(entry: OfficialWeights) -> Path:
    return srlab_home() / "weights" / entry.folder / entry.file


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def problem(entry: OfficialWeights, path: Path) -> str | None:
    """None if ``path`` is the released file (size and SHA-256), else what differs."""
    size = path.stat().st_size
    if size != entry.size:
        return f"{size} bytes, expected {entry.size}"
    sha = _sha256(path)
    if sha != entry.sha256:
        return f"SHA-256 {sha[:16]}..., expected {entry.sha256[:16]}..."
    return None


def fetch(entry: OfficialWeights, *, mirror: str | Path | None = None,
          log: Callable[[str], None] = lambda _: None) -> Path:
    """The checked file of ``entry`` in the cache: already there, copied from ``mirror`` (a folder laid out
    as ``<folder>/<file>``, or holding ``<file>``), or downloaded from the release URL."""
    target = cache_path(entry)
    if target.is_file():
        wrong = problem(entry, target)
        if wrong is None:
            return target
        raise SrlabError(f"{target} is not the released {entry.file} ({wrong}): delete it, then run "
                         f"`srlab weights download {entry.key}` again")
    if mirror is not None:
        return _copy(entry, Path(mirror), target, log)
    return _download(entry, target, log)


def _fetch_by_hand(entry: OfficialWeights, target: Path, reason: str) -> str:
    return (f"official {entry.key} weights {reason}; fetch {entry.url} by hand and put it at {target} "
            f"(or run `srlab weights download {entry.key} --from DIR` with a folder that holds {entry.file})")


def _copy(entry: OfficialWeights, mirror: Path, target: Path, log: Callable[[str], None]) -> Path:
    if not mirror.is_dir():
        raise SrlabError(f"--from '{mirror}' is not a folder: give the folder that holds the official weights")
    source = next((p for p in (mirror / entry.folder / entry.file, mirror / entry.file) if p.is_file()), None)
    if source is None:
        raise SrlabError(f"{entry.file} is neither in {mirror / entry.folder} nor in {mirror}: "
                         f"fetch it from {entry.url}")
    wrong = problem(entry, source)
    if wrong:
        raise SrlabError(f"{source} is not the released {entry.file} ({wrong}): fetch it again from {entry.url}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    log(f"{entry.key}: copied {source} to {target}")
    return target


def _download(entry: OfficialWeights, target: Path, log: Callable[[str], None]) -> Path:
    request = urllib.request.Request(entry.url, headers={"User-Agent": "srlab-weights/1"})
    try:
        response = urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        raise SrlabError(_fetch_by_hand(entry, target, f"refused by the server (HTTP {e.code} {e.reason})")) from None
    except (urllib.error.URLError, socket.timeout, OSError) as e:
        reason = " ".join(str(getattr(e, "reason", e)).split())
        raise SrlabError(_fetch_by_hand(entry, target, f"cannot be downloaded ({reason}; offline?)")) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    log(f"{entry.key}: downloading {entry.url}")
    try:
        with response, open(partial, "wb") as out:
            while block := response.read(CHUNK):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        wrong = problem(entry, partial)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:  # OSError: connection, timeout
        partial.unlink(missing_ok=True)
        reason = " ".join(str(e).split())
        raise SrlabError(_fetch_by_hand(entry, target, f"broke off while downloading ({reason})")) from None
    if wrong:
        partial.unlink(missing_ok=True)
        raise SrlabError(f"{entry.url} is not the released {entry.file} ({wrong}): deleted it; the file at that "
                         "commit has changed or the download was corrupted; try again")
    os.replace(partial, target)
    return target
