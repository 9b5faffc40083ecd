"""The standard SR data sets, as data: what they are, where they come from, and the layout srlab reads.

Every set is stored under one data root (``--root DIR``) in the layout that
:func:`srlab.data.datasets.discover_pairs` reads:

- DIV2K and Flickr2K (training sets, "div2k" layout): ``ROOT/DIV2K/DIV2K_train_HR/0001.png`` and
  ``ROOT/DIV2K/DIV2K_train_LR_bicubic/X2/0001x2.png`` (likewise ``DIV2K_valid_*``, ``Flickr2K/Flickr2K_*``);
  pass ``ROOT/DIV2K/DIV2K_train_HR`` to ``srlab train``.
- Benchmark sets (EDSR "benchmark" layout): ``ROOT/Set5/HR/baby.png`` and
  ``ROOT/Set5/LR_bicubic/X2/babyx2.png``; pass ``ROOT/Set5`` to ``srlab eval``. ``../shared/benchmarks``
  is such a root.

An LR folder that is absent is not an error: srlab then makes the LR images from the HR ones with the
MATLAB bicubic degradation, exactly as the LR files of these sets were made.

Checksums. Only checksums published by a source that downloads and checks these very files are
recorded; none is invented:

- DIV2K: SHA-256 and byte sizes from TensorFlow Datasets' ``tensorflow_datasets/url_checksums/div2k.txt``
  (tensorflow/datasets, commit 333639b37af6c6fedf3610a4a2d42f1c6ef6f7d5), MD5 from torchSR
  (Coloquinte/torchSR, ``torchsr/datasets/div2k.py``).
- ``benchmark.tar`` and ``Flickr2K.tar`` (EDSR authors' server): MD5 only, from torchSR
  (``torchsr/datasets/benchmarks.py``, ``flickr2k.py``), which checks its downloads against them. No
  SHA-256 from an authoritative source is known: the download then checks the MD5 and, after
  extraction, the file counts and LR/HR sizes. It records the SHA-256 it computed (of the archive and
  of every extracted file) in ``ROOT/.srlab/manifests/NAME.json``, which ``srlab data verify`` checks.
- Manga109: no public download (licence); placed by hand, checked by counts and sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

from srlab.errors import SrlabError

__all__ = ["Archive", "DatasetInfo", "Extract", "Part", "DATASETS", "get", "names"]

SCALES: tuple[int, ...] = (2, 3, 4)

DIV2K_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
EDSR_URL = "https://cv.snu.ac.kr/research/EDSR/"
TFDS_SOURCE = "TensorFlow Datasets url_checksums/div2k.txt (tensorflow/datasets@333639b)"
TORCHSR_SOURCE = "torchSR (Coloquinte/torchSR, torchsr/datasets)"


@dataclass(frozen=True)
class Part:
    """One folder of HR images (a split) and its LR folders, relative to the data root."""

    name: str  # "train", "valid", "test"
    hr_dir: str  # e.g. "DIV2K/DIV2K_train_HR" or "Set5/HR"
    lr_dir: str  # with {scale}: "DIV2K/DIV2K_train_LR_bicubic/X{scale}"
    count: int  # number of HR images (and of LR images per scale)
    # The exact file stems when the set fixes them (DIV2K 0001..0800), else empty: counts only.
    stems: tuple[str, ...] = ()

    def lr_path(self, scale: int) -> str:
        return self.lr_dir.format(scale=scale)


@dataclass(frozen=True)
class Extract:
    """Archive members under ``source`` (a folder inside the archive) go to ``dest`` under the root."""

    source: str
    dest: str


@dataclass(frozen=True)
class Archive:
    url: str
    size: int | None = None  # bytes, when known from the checksum source
    sha256: str | None = None
    md5: str | None = None
    checksum_source: str = "unknown: no authoritative checksum; file counts and sizes are checked instead"
    extract: tuple[Extract, ...] = ()
    scale: int | None = None  # the LR scale the archive holds; None: HR, or every scale

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    paper: str
    licence: str
    homepage: str
    parts: tuple[Part, ...]
    scales: tuple[int, ...] = SCALES
    archives: tuple[Archive, ...] = ()
    # Why and how to get it by hand, when there is no automatic download.
    manual: str | None = None
    role: str = "test"  # "train" or "test"

    @property
    def hr_count(self) -> int:
        return sum(p.count for p in self.parts)

    def archives_for(self, scales: tuple[int, ...] | None = None) -> tuple[Archive, ...]:
        """The archives holding the HR images and the LR images of ``scales`` (default: all)."""
        wanted = self.scales if scales is None else scales
        return tuple(a for a in self.archives if a.scale is None or a.scale in wanted)


def _numbered(first: int, last: int, width: int) -> tuple[str, ...]:
    return tuple(f"{i:0{width}d}" for i in range(first, last + 1))


# (file name, bytes, sha256) from TFDS, and the MD5 from torchSR, for the DIV2K bicubic track.
_DIV2K_FILES = {
    "DIV2K_train_HR.zip": (
        3530603713, "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335",
        "bdc2d9338d4e574fe81bf7d158758658"),
    "DIV2K_train_LR_bicubic_X2.zip": (
        925390592, "a53a424317575838dadce4bcd97cf7b744d6855f43740ed5f0245af3cf4bd850",
        "9a637d2ef4db0d0a81182be37fb00692"),
    "DIV2K_train_LR_bicubic_X3.zip": (
        427847282, "ad5c8e5507e2765823d3c2c5bd0934842efcd487c5370604c224090898b3163a",
        "ad80b9fe40c049a07a8a6c51bfab3b6d"),
    "DIV2K_train_LR_bicubic_X4.zip": (
        246914039, "f006b837f4eb52b82909aa01478e6d6d199eefce932179491d0c9dbb706dde3a",
        "76c43ec4155851901ebbe8339846d93d"),
    "DIV2K_valid_HR.zip": (
        448993893, "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",
        "9fcdda83005c5e5997799b69f955ff88"),
    "DIV2K_valid_LR_bicubic_X2.zip": (
        117763600, "60eed9875c697df51204aa579e2a699e1d5215095788a097ff54dd17e2664d57",
        "1512c9a3f7bde2a1a21a73044e46b9cb"),
    "DIV2K_valid_LR_bicubic_X3.zip": (
        54513392, "04b9a2ed3b4a0715d3924d3ae8514830c3328fac8d30512ce716d6f419e052a3",
        "18b1d310f9f88c13618c287927b29898"),
    "DIV2K_valid_LR_bicubic_X4.zip": (
        31505881, "a50a5d1c4b88de4e8d300d8fb2b904c52fe93b2b298a4899697760d7cbb6d553",
        "21962de700c8d368c6ff83314480eff0"),
}


def _div2k_archives() -> tuple[Archive, ...]:
    archives = []
    for split in ("train", "valid"):
        for scale in (None, *SCALES):
            if scale is None:
                filename, source, dest = (f"DIV2K_{split}_HR.zip", f"DIV2K_{split}_HR",
                                          f"DIV2K/DIV2K_{split}_HR")
            else:
                filename = f"DIV2K_{split}_LR_bicubic_X{scale}.zip"
                source = f"DIV2K_{split}_LR_bicubic/X{scale}"
                dest = f"DIV2K/{source}"
            size, sha256, md5 = _DIV2K_FILES[filename]
            archives.append(Archive(
                url=DIV2K_URL + filename, size=size, sha256=sha256, md5=md5,
                checksum_source=f"SHA-256 and size: {TFDS_SOURCE}; MD5: {TORCHSR_SOURCE}",
                extract=(Extract(source, dest),), scale=scale,
            ))
    return tuple(archives)


# The EDSR authors' benchmark archive: benchmark/{Set5,Set14,B100,Urban100}/{HR,LR_bicubic/X2..X4}.
# It does not hold Manga109.
BENCHMARK_URL = EDSR_URL + "benchmark.tar"
BENCHMARK_MD5 = "4ace41d33c2384b97e6b320cd0afd6ba"


def _benchmark(name: str, count: int, description: str, paper: str, licence: str, homepage: str) -> DatasetInfo:
    archive = Archive(
        url=BENCHMARK_URL, md5=BENCHMARK_MD5,
        checksum_source=f"MD5: {TORCHSR_SOURCE}; SHA-256 unknown (no authoritative source)",
        extract=(Extract(f"benchmark/{name}", name),),
    )
    return DatasetInfo(
        name=name, description=description, paper=paper, licence=licence, homepage=homepage,
        parts=(Part("test", f"{name}/HR", f"{name}/LR_bicubic/X{{scale}}", count),),
        archives=(archive,),
    )


DATASETS: tuple[DatasetInfo, ...] = (
    DatasetInfo(
        name="DIV2K",
        description="1000 diverse 2K photos: 800 train (0001-0800), 100 valid (0801-0900); bicubic LR x2/x3/x4",
        paper="Agustsson & Timofte, NTIRE 2017 Challenge on Single Image Super-Resolution: Dataset and "
              "Study, CVPR Workshops 2017",
        licence="academic research use only (terms on the DIV2K page)",
        homepage=DIV2K_URL,
        parts=(
            Part("train", "DIV2K/DIV2K_train_HR", "DIV2K/DIV2K_train_LR_bicubic/X{scale}", 800,
                 _numbered(1, 800, 4)),
            Part("valid", "DIV2K/DIV2K_valid_HR", "DIV2K/DIV2K_valid_LR_bicubic/X{scale}", 100,
                 _numbered(801, 900, 4)),
        ),
        archives=_div2k_archives(),
        role="train",
    ),
    DatasetInfo(
        name="Flickr2K",
        description="2650 2K photos from Flickr (000001-002650) collected by the EDSR authors; bicubic LR x2/x3/x4",
        paper="Lim, Son, Kim, Nah & Lee, Enhanced Deep Residual Networks for Single Image "
              "Super-Resolution (EDSR), CVPR Workshops 2017",
        licence="no explicit licence; photos collected from Flickr, used for research",
        homepage="https://github.com/limbee/NTIRE2017",
        parts=(Part("train", "Flickr2K/Flickr2K_HR", "Flickr2K/Flickr2K_LR_bicubic/X{scale}", 2650,
                    _numbered(1, 2650, 6)),),
        archives=(Archive(
            url=EDSR_URL + "Flickr2K.tar", md5="5d3f39443d5e9489bff8963f8f26cb03",
            checksum_source=f"MD5: {TORCHSR_SOURCE}; SHA-256 and size unknown (no authoritative source)",
            extract=(Extract("Flickr2K/Flickr2K_HR", "Flickr2K/Flickr2K_HR"),
                     Extract("Flickr2K/Flickr2K_LR_bicubic", "Flickr2K/Flickr2K_LR_bicubic")),
        ),),
        role="train",
    ),
    _benchmark(
        "Set5", 5, "5 images (baby, bird, butterfly, head, woman)",
        "Bevilacqua, Roumy, Guillemot & Alberi-Morel, Low-Complexity Single-Image Super-Resolution based "
        "on Nonnegative Neighbor Embedding, BMVC 2012",
        "research use; no explicit licence", "http://people.rennes.inria.fr/Aline.Roumy/results/SR_BMVC12.html",
    ),
    _benchmark(
        "Set14", 14, "14 images (people, animals, objects, a comic, a slide)",
        "Zeyde, Elad & Protter, On Single Image Scale-Up Using Sparse-Representations, Curves and "
        "Surfaces 2010 (LNCS 6920)",
        "research use; no explicit licence", "https://sites.google.com/site/romanzeyde/research-interests",
    ),
    _benchmark(
        "B100", 100, "100 natural photos: the test split of the Berkeley Segmentation Dataset (BSD300)",
        "Martin, Fowlkes, Tal & Malik, A Database of Human Segmented Natural Images..., ICCV 2001",
        "BSDS: non-commercial research and educational use",
        "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/",
    ),
    _benchmark(
        "Urban100", 100, "100 urban scenes with regular structures (buildings)",
        "Huang, Singh & Ahuja, Single Image Super-Resolution from Transformed Self-Exemplars, CVPR 2015",
        "research use; no explicit licence", "https://github.com/jbhuang0604/SelfExSR",
    ),
    DatasetInfo(
        name="Manga109",
        description="109 manga volumes, one image each (the SR test set)",
        paper="Matsui et al., Sketch-based Manga Retrieval using Manga109 Dataset, Multimedia Tools and "
              "Applications 2017",
        licence="academic research only, on request (Manga109 terms of use); not redistributable",
        homepage="http://www.manga109.org/en/",
        parts=(Part("test", "Manga109/HR", "Manga109/LR_bicubic/X{scale}", 109),),
        manual="no automatic download (its licence forbids redistribution): request it at "
               "http://www.manga109.org/en/download.html",
    ),
)


def names() -> tuple[str, ...]:
    return tuple(d.name for d in DATASETS)


def get(name: str) -> DatasetInfo:
    """The catalog entry of ``name`` (case-insensitive)."""
    for info in DATASETS:
        if info.name.lower() == name.lower():
            return info
    raise SrlabError(f"unknown data set '{name}': choose from {', '.join(names())}")
