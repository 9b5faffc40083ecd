"""Convert the official checkpoints that srlab bundles (``"bundled": true`` in srlab/weights/official.json)
into ``src/srlab/weights/<model>_x<scale>.safetensors``.

Usage: python scripts/bundle_official_weights.py --from DIR

DIR holds the released files (``<folder>/<file>`` or ``<file>``, e.g. ../shared/official-weights); each is
checked against the registry's SHA-256, loaded strictly into srlab's model (in the form it was released:
ETDS as its fused inference form) and written with srlab's metadata plus where it came from. The tensors
are the released ones, unchanged (float32).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import srlab
from srlab.models import official
from srlab.models.weights import save_weights

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "srlab" / "weights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="mirror", required=True, metavar="DIR", help="folder of the released files")
    args = parser.parse_args()
    for entry in (e for e in official.entries() if e.bundled):
        source = _released_file(entry, Path(args.mirror))
        model = srlab.create_model(entry.model, scale=entry.scale, checkpoint=source, args=dict(entry.args) or None)
        out = WEIGHTS / f"{entry.model}_x{entry.scale}.safetensors"
        save_weights(out, model, metadata={
            "srlab.source": entry.url, "srlab.source_sha256": entry.sha256, "srlab.licence": entry.licence,
        })
        print(f"{out.name}: {out.stat().st_size:,} bytes from {entry.file} ({entry.licence})")


def _released_file(entry: official.OfficialWeights, mirror: Path) -> Path:
    for path in (mirror / entry.folder / entry.file, mirror / entry.file):
        if path.is_file():
            wrong = official.problem(entry, path)
            if wrong:
                raise SystemExit(f"{path} is not the released {entry.file}: {wrong}")
            return path
    raise SystemExit(f"{entry.file} is not in {mirror}: fetch it from {entry.url}")


if __name__ == "__main__":
    main()
