"""Find image/mask pairs in a user's folder and read them safely (Pillow, numpy).

Two layouts are recognised:

- plain: `images/NAME.{jpg,png,tif,...}` + `masks/NAME.png`; optional `train.txt` / `val.txt`
  at the root listing names (one per line) for the split.
- VOC: `JPEGImages/NAME.jpg` + `SegmentationClass/NAME.png`; the split comes from
  `ImageSets/Segmentation/{train,val}.txt` when present.

Without split files, the labelled names sorted alphabetically are split 80/20: every 5th
name (index % 5 == 4) is validation, so the split never changes when run again.

Masks are class indices: palette ('P') or grey ('L') PNGs, 255 = ignore. An RGB mask is
refused, since reading colours as classes would silently invent classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from segdeploy.data.base import to_uint8_percentile
from segdeploy.errors import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
]
GREY_MODES = ("L", "LA", "1", "I", "I;16", "I;16B", "I;16L", "F")
VAL_EVERY = 5
_LAYOUT_HELP = ("a folder with images/ + masks/ (same names, masks as PNG) or the VOC layout "
                "(JPEGImages/, SegmentationClass/, optional ImageSets/Segmentation/*.txt)")

T = TypeVar("T")


@dataclass(frozen=True)
class Pair:
    stem: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class Layout:
    root: Path
    kind: str  # "plain" | "voc"
    pairs: dict[str, Pair]  # every labelled name, sorted
    unlabelled: int  # images without a mask (VOC ships many); they are not used
    split_dir: Path | None  # folder holding train.txt / val.txt, when the split is given


def discover(root: Path) -> Layout:
    """Recognise the layout and pair every mask with its image."""
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist", expected=_LAYOUT_HELP,
                        fix="check the path, or use a built-in dataset: brain, nuclei")
    if (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir():
        kind, image_dir, mask_dir = "voc", root / "JPEGImages", root / "SegmentationClass"
        split_dir = root / "ImageSets" / "Segmentation"
    elif (root / "images").is_dir() and (root / "masks").is_dir():
        kind, image_dir, mask_dir, split_dir = "plain", root / "images", root / "masks", root
    else:
        raise DataError(f"folder {root} has neither images/ + masks/ nor the VOC layout",
                        expected=_LAYOUT_HELP,
                        fix="put images in images/ and PNG masks with the same names in masks/")
    images: dict[str, Path] = {}
    for p in sorted(image_dir.iterdir()):
        if p.suffix.lower() in IMAGE_EXTS and p.is_file() and not p.name.startswith("."):
            if p.stem in images:
                raise DataError(f"two images share the name {p.stem!r}: {images[p.stem].name} "
                                f"and {p.name} in {image_dir}", expected="one image per name",
                                fix="rename or remove one of them")
            images[p.stem] = p
    masks = {p.stem: p for p in sorted(mask_dir.iterdir())
             if p.suffix.lower() == ".png" and p.is_file() and not p.name.startswith(".")}
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise DataError(f"mask {masks[orphans[0]]} has no image of the same name in {image_dir} "
                        f"({len(orphans)} such masks)",
                        expected=f"an image {orphans[0]}.jpg/.png/... for every mask",
                        fix="add the image or remove the mask")
    if not masks:
        raise DataError(f"no PNG masks found in {mask_dir}",
                        expected="one PNG mask of class indices per image, named like the image",
                        fix="save masks as PNG (palette or 8-bit grey) named IMAGE_NAME.png")
    pairs = {s: Pair(s, images[s], masks[s]) for s in sorted(masks)}
    has_split = (split_dir / "train.txt").is_file() or (split_dir / "val.txt").is_file()
    return Layout(root, kind, pairs, len(images) - len(masks), split_dir if has_split else None)


def split_stems(layout: Layout, split: str) -> list[str]:
    """Names in the split: from the split file when given, else every 5th sorted name is val."""
    if layout.split_dir is not None:
        path = layout.split_dir / f"{split}.txt"
        if not path.is_file():
            raise DataError(f"split file {path} is missing while {layout.split_dir} has others",
                            expected="train.txt and val.txt, one image name per line",
                            fix=f"create {path.name}, or remove the split files to use the "
                                "automatic 80/20 split")
        stems = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
        for s in stems:
            if s not in layout.pairs:
                raise DataError(f"{path.name} lists {s!r}, which has no image + mask pair in "
                                f"{layout.root}", expected="every listed name to have both",
                                fix="add the missing files or remove the name from the list")
        return stems
    names = list(layout.pairs)
    val = [s for i, s in enumerate(names) if i % VAL_EVERY == VAL_EVERY - 1]
    if not val and len(names) >= 2:
        val = names[-1:]  # fewer than 5 images: keep one for validation
    chosen = set(val)
    return val if split == "val" else [s for s in names if s not in chosen]


def check_split_not_empty(stems: list[str], split: str, root: Path) -> None:
    if not stems:
        raise DataError(f"the {split} split of {root} is empty",
                        expected="at least one image in each split (2+ labelled images)",
                        fix="add images, or list names in train.txt / val.txt")


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
        return img
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}", expected="a readable image file",
                        fix="re-export the file or remove it from the dataset") from exc


def native_mode(path: Path) -> str:
    """'grey' or 'rgb' for an image, from its header only."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return "grey" if img.mode in GREY_MODES else "rgb"
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}", expected="a readable image file") from exc


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the header, without decoding pixels."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.height, img.width
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}", expected="a readable image file") from exc


def read_image(path: Path, grey: bool) -> np.ndarray:
    """HxW uint8 (grey) or HxWx3 uint8; 16-bit/float images scale their 0.5..99.5 percentiles."""
    img = _open(path)
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = to_uint8_percentile(np.asarray(img, dtype=np.float32), 0.5, 99.5)
        return a if grey else np.repeat(a[:, :, None], 3, axis=2)
    return np.asarray(img.convert("L" if grey else "RGB"))


def read_mask(path: Path) -> np.ndarray:
    """HxW uint8 class indices; refuses colour masks."""
    img = _open(path)
    if img.mode in ("P", "L"):
        return np.asarray(img, dtype=np.uint8)
    if img.mode == "1":
        return np.asarray(img, dtype=np.uint8)
    if img.mode in ("I", "I;16", "I;16B", "I;16L"):
        a = np.asarray(img)
        if a.size and int(a.max()) > 255:
            raise DataError(f"mask {path} holds class ids up to {int(a.max())}",
                            expected="class ids 0..254 and 255 for ignore",
                            fix="save masks as 8-bit PNG with at most 255 classes")
        return a.astype(np.uint8)
    raise DataError(f"mask {path} is a {img.mode} image, so its pixels are colours, not class ids",
                    expected="a palette ('P') or 8-bit grey ('L') PNG whose pixel values are "
                             "class indices (255 = ignore)",
                    fix="convert colours to indices, e.g. map each colour to its class id with "
                        "numpy and save with PIL Image.fromarray(ids.astype('uint8'), 'L')")


def mask_max_id(path: Path) -> int:
    """Largest class id in a mask, ignoring 255 (-1 when the mask is all ignore)."""
    mask = read_mask(path)
    counts = np.bincount(mask.ravel(), minlength=256)
    counts[255] = 0
    nz = np.nonzero(counts)[0]
    return int(nz[-1]) if nz.size else -1


def read_classes_file(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) < 2:
        raise DataError(f"{path} lists {len(names)} class name(s)",
                        expected="one name per line for every class id, background included "
                                 "(at least 2)", fix="add the missing names to classes.txt")
    return names


def progress(items: Iterable[T], total: int, description: str) -> Iterator[T]:
    """A rich progress bar on stderr for long scans; silent for small folders."""
    if total < 100:
        yield from items
        return
    from rich.console import Console
    from rich.progress import track

    yield from track(items, total=total, description=description, transient=True,
                     console=Console(stderr=True))
