"""Find image/mask pairs in a user's folder and read them safely (Pillow, numpy).

Three layouts are recognised:

- plain: `images/NAME.{jpg,png,tif,...}` + `masks/NAME.png`; optional `train.txt` / `val.txt`
  at the root listing names (one per line) for the split.
- VOC: `JPEGImages/NAME.jpg` + `SegmentationClass/NAME.png`; the split comes from
  `ImageSets/Segmentation/{train,val}.txt` when present.
- CVAT "Segmentation mask 1.1" export: the VOC layout plus `labelmap.txt` (lines
  `name:r,g,b:parts:actions`); its masks are RGB colours, mapped to class ids by the
  labelmap's colours (id = line number). CVAT writes one `ImageSets/Segmentation/default.txt`
  and no train/val split; the automatic split below is used and `describe()` says so.

Without split files, the labelled names sorted alphabetically are split 80/20: every 5th
name (index % 5 == 4) is validation, so the split never changes when run again.

Masks are class indices: palette ('P') or grey ('L') PNGs, 255 = ignore. A colour (RGB) mask
needs a `labelmap.txt` at the dataset root (any layout); without one it is refused, since
reading colours as classes would silently invent classes. Images are read by the one decoder
(`segdeploy.imaging.read_image`: EXIF orientation applied, 16-bit and float kept for the
intensity mapping); masks get the same EXIF orientation.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from segdeploy.errors import DataError, InputError, map_exceptions
from segdeploy.imaging import IGNORE_INDEX, IMAGE_SUFFIXES, ImageHeader, read_header

VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
]
VAL_EVERY = 5
LABELMAP = "labelmap.txt"
_LAYOUT_HELP = ("a folder with images/ + masks/ (same names, masks as PNG), the VOC layout "
                "(JPEGImages/, SegmentationClass/, optional ImageSets/Segmentation/*.txt) or "
                "a CVAT 'Segmentation mask 1.1' export (the VOC layout + labelmap.txt)")
_LABELMAP_FIX = (f"add {LABELMAP} at the dataset root with one line per class in CVAT's "
                 "format NAME:R,G,B:: (id = line number, e.g. 'background:0,0,0::' then "
                 "'car:255,0,0::'), or save masks as class ids with "
                 "PIL Image.fromarray(ids.astype('uint8'), 'L')")

T = TypeVar("T")


@dataclass(frozen=True)
class Pair:
    stem: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class Labelmap:
    """Class names and their mask colours, from a CVAT-style labelmap.txt (id = line)."""

    path: Path
    names: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...]

    def lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted packed colours (r << 16 | g << 8 | b) and the class id of each."""
        packed = np.array([(r << 16) | (g << 8) | b for r, g, b in self.colours], np.int64)
        order = np.argsort(packed)
        return packed[order], order.astype(np.uint8)


@dataclass(frozen=True)
class Layout:
    root: Path
    kind: str  # "plain" | "voc" | "cvat"
    pairs: dict[str, Pair]  # every labelled name, sorted
    unlabelled: int  # images without a mask (VOC ships many); they are not used
    split_dir: Path | None  # folder holding train.txt / val.txt, when the split is given
    labelmap: Labelmap | None = None
    #: a split list without train/val (CVAT's default.txt), replaced by the automatic split
    unsplit_list: Path | None = None


def discover(root: Path) -> Layout:
    """Recognise the layout and pair every mask with its image."""
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist", expected=_LAYOUT_HELP,
                        fix="check the path, or use a built-in dataset: brain, nuclei")
    labelmap = read_labelmap(root / LABELMAP)
    if (root / "SegmentationClass").is_dir():
        if not (root / "JPEGImages").is_dir():
            raise DataError(f"{root} has SegmentationClass/ but no JPEGImages/ folder",
                            expected="the images beside the masks, in JPEGImages/",
                            fix="export from CVAT with 'Save images' ticked, or copy the "
                                "images into JPEGImages/ under the masks' names")
        kind = "cvat" if labelmap is not None else "voc"
        image_dir, mask_dir = root / "JPEGImages", root / "SegmentationClass"
        split_dir = root / "ImageSets" / "Segmentation"
    elif (root / "images").is_dir() and (root / "masks").is_dir():
        kind, image_dir, mask_dir, split_dir = "plain", root / "images", root / "masks", root
    else:
        raise DataError(f"folder {root} has neither images/ + masks/ nor the VOC layout",
                        expected=_LAYOUT_HELP,
                        fix="put images in images/ and PNG masks with the same names in masks/")
    images: dict[str, Path] = {}
    for p in sorted(image_dir.iterdir()):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith("."):
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
    unsplit = split_dir / "default.txt"
    return Layout(root, kind, pairs, len(images) - len(masks), split_dir if has_split else None,
                  labelmap, unsplit if not has_split and unsplit.is_file() else None)


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


def split_description(layout: Layout, split: str) -> str:
    """Where the split comes from, in words (recorded in the checkpoint's card)."""
    if layout.split_dir is not None:
        return str(layout.split_dir / f"{split}.txt")
    auto = f"sorted names, every {VAL_EVERY}th is val"
    if layout.unsplit_list is not None:
        return (f"{layout.unsplit_list.name} has no train/val split, so segdeploy made one: "
                + auto)
    return auto


def split_note(layout: Layout) -> str | None:
    """One sentence for a person when segdeploy made the split (None when split files gave
    it): counts, the rule, and how to choose another, so no image's role is a surprise."""
    if layout.split_dir is not None:
        return None
    train, val = split_stems(layout, "train"), split_stems(layout, "val")
    where = layout.root if layout.kind == "plain" else layout.root / "ImageSets" / "Segmentation"
    missing = (f"{layout.unsplit_list.name} has no train/val split" if layout.unsplit_list
               is not None else f"no train.txt / val.txt in {where}")
    rule = (f"every {VAL_EVERY}th name in sorted order is val" if len(layout.pairs) >= VAL_EVERY
            else "fewer than 5 images: the last name in sorted order is val")
    return (f"{missing}, so segdeploy split the {len(layout.pairs)} labelled images: "
            f"{len(train)} train / {len(val)} val ({rule}; the same on every run); to choose, "
            f"write train.txt and val.txt (one name per line) in {where}")


def check_split_not_empty(stems: list[str], split: str, root: Path) -> None:
    if not stems:
        raise DataError(f"the {split} split of {root} is empty",
                        expected="at least one image in each split (2+ labelled images)",
                        fix="add images, or list names in train.txt / val.txt")


def _open(path: Path):
    """A Pillow image with its EXIF orientation applied (masks follow their images)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
        return ImageOps.exif_transpose(img)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read {path}: {exc}", expected="a readable image file",
                        fix="re-export the file or remove it from the dataset") from exc


def image_header(path: Path) -> ImageHeader:
    """The one header reader (imaging.read_header: Pillow, tifffile for float / multi-band
    TIFFs), with DataError naming the file."""
    with map_exceptions({InputError: as_data_error}):
        return read_header(path)


def native_mode(path: Path) -> str:
    """'grey' or 'rgb' for an image, from its header only."""
    return image_header(path).channels


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) as displayed, from the header, without decoding pixels."""
    header = image_header(path)
    return header.height, header.width


def read_raw_image(path: Path, grey: bool) -> np.ndarray:
    """The one decoder (imaging.read_image), with DataError naming the file."""
    from segdeploy.imaging import read_image

    with map_exceptions({InputError: lambda e: as_data_error(
            e, fix="re-export the file or remove it from the dataset")}):
        return read_image(path, grey=grey)


def as_data_error(exc: BaseException, **changes: str | None) -> DataError:
    """An image's InputError met while reading a dataset is the dataset's DataError."""
    assert isinstance(exc, InputError)
    return exc.retyped(DataError, **changes)


def read_mask(path: Path, labelmap: Labelmap | None = None) -> np.ndarray:
    """HxW uint8 class indices; colour masks through the labelmap, refused without one."""
    img = _open(path)
    if labelmap is not None:
        return _colours_to_ids(np.asarray(img.convert("RGB")), labelmap, path)
    if img.mode in ("P", "L", "1"):
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
                             f"class indices (255 = ignore), or colour masks with a {LABELMAP}",
                    fix=_LABELMAP_FIX)


def _colours_to_ids(rgb: np.ndarray, labelmap: Labelmap, path: Path) -> np.ndarray:
    packed = ((rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8)
              | rgb[..., 2].astype(np.int64))
    keys, ids = labelmap.lookup()
    pos = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    unknown = keys[pos] != packed
    if unknown.any():
        y, x = (int(v[0]) for v in np.nonzero(unknown))
        r, g, b = (int(v) for v in rgb[y, x])
        n = int(unknown.sum())
        raise DataError(f"mask {path} has colour {r},{g},{b} ({n} pixel{'s' * (n != 1)}, the "
                        f"first at x={x}, y={y}), which {labelmap.path.name} does not list",
                        expected=f"only the colours of {labelmap.path}",
                        fix=f"add a line NAME:{r},{g},{b}:: to {labelmap.path.name} or repaint "
                            "those pixels with a listed colour")
    return ids[pos]


def read_labelmap(path: Path) -> Labelmap | None:
    """Parse CVAT's labelmap.txt (`# label:color_rgb:parts:actions` header, then one line
    `name:r,g,b:parts:actions` per class); None when the file is absent."""
    if not path.is_file():
        return None
    names: list[str] = []
    colours: list[tuple[int, int, int]] = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        try:
            name = parts[0].strip()
            rgb = tuple(int(v) for v in parts[1].split(","))
            if not name or len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
                raise ValueError
        except (IndexError, ValueError):
            raise DataError(f"{path} line {number} {line!r} is not NAME:R,G,B::",
                            expected="CVAT's labelmap format, e.g. 'car:255,0,0::'",
                            fix="write one class per line as NAME:R,G,B:: (R, G, B in 0..255)"
                            ) from None
        if rgb in colours:
            raise DataError(f"{path} gives colour {rgb} to both {names[colours.index(rgb)]!r} "
                            f"and {name!r}", expected="one colour per class",
                            fix="give each class its own colour")
        names.append(name)
        colours.append(rgb)  # type: ignore[arg-type]
    if len(names) < 2:
        raise DataError(f"{path} lists {len(names)} class(es)",
                        expected="at least 2 (background included)",
                        fix="add a line per class, e.g. background:0,0,0:: and object:255,0,0::")
    if len(names) > 255:
        raise DataError(f"{path} lists {len(names)} classes", expected="at most 255")
    return Labelmap(path, tuple(names), tuple(colours))


@dataclass(frozen=True)
class MaskScan:
    """Pixel count of every class id over all masks (255 = ignore), and a mask holding each."""

    counts: np.ndarray  # 256 int64
    first: dict[int, Path]

    @property
    def top(self) -> int:
        """Largest class id (ignoring 255), -1 when every mask is ignore."""
        nz = np.nonzero(self.counts[:IGNORE_INDEX])[0]
        return int(nz[-1]) if nz.size else -1

    @property
    def used(self) -> list[int]:
        return [int(i) for i in np.nonzero(self.counts[:IGNORE_INDEX])[0]]


@functools.lru_cache(maxsize=16)
def scan_masks(masks: tuple[Path, ...], labelmap: Labelmap | None) -> MaskScan:
    """Decode every mask once per process and count its class ids."""
    counts = np.zeros(256, np.int64)
    first: dict[int, Path] = {}
    for path in progress(masks, len(masks), "Scanning masks for class ids"):
        c = np.bincount(read_mask(path, labelmap).ravel(), minlength=256)
        for i in np.nonzero(c)[0]:
            first.setdefault(int(i), path)
        counts += c
    return MaskScan(counts, first)


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
