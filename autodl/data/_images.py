"""Image folders: ``DIR/<class>/*.png|jpg|jpeg``, decoded once (Pillow) into float arrays.

Every image is converted to RGB, its shorter side resized to ``size`` and the centre cut
to ``size x size`` (``DIR?size=N``, default 64), giving ``(n, 3, size, size)`` in [0, 1];
normalisation then uses the training split's per-channel statistics, as for any image
data. Random crops (shifts) and flips are training options (``augment``, ``hflip``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from autodl.data._split import RawData, int_option
from autodl.errors import UsageError

__all__ = ["IMAGE_OPTIONS", "IMAGE_SUFFIXES", "read_image_files", "read_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_OPTIONS = ("size",)
DEFAULT_SIZE = 64


def _size(options: Mapping[str, str], path: Path) -> int:
    return int_option(options, "size", DEFAULT_SIZE, 4, 1024, path)


def _images_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*")
                  if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def _decode(file: Path, size: int) -> np.ndarray:
    try:
        from PIL import Image
    except ModuleNotFoundError:
        raise UsageError("image folders need Pillow: pip install 'autodl[images]' "
                         "(or pillow)") from None
    try:
        with Image.open(file) as opened:
            image = opened.convert("RGB")
    except Exception as exc:
        raise UsageError(f"cannot decode the image ({type(exc).__name__}: {exc})",
                         file=str(file)) from None
    scale = size / min(image.size)
    w, h = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((w, h), Image.Resampling.BILINEAR)
    left, top = (w - size) // 2, (h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return (np.asarray(image, dtype=np.float32) / 255.0).transpose(2, 0, 1)


def read_image_folder(path: Path, options: Mapping[str, str]) -> RawData:
    """One subfolder per class (its name is the label), images anywhere below it."""
    size = _size(options, path)
    classes = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise UsageError("expected one subfolder per class holding PNG/JPEG images; found "
                         "no subfolders", file=str(path))
    files: list[Path] = []
    labels: list[str] = []
    for folder in classes:
        found = _images_in(folder)
        if not found:
            raise UsageError(f"class folder {folder.name!r} holds no {'/'.join(IMAGE_SUFFIXES)}"
                             " images", file=str(path))
        files += found
        labels += [folder.name] * len(found)
    X = np.stack([_decode(f, size) for f in files])
    return RawData(X=X, y=np.array(labels), source=str(path), modality="image")


def read_image_files(path: Path, options: Mapping[str, str]) -> np.ndarray:
    """Every image below ``path``, in path order (for ``autodl predict``)."""
    files = _images_in(path)
    if not files:
        raise UsageError(f"no {'/'.join(IMAGE_SUFFIXES)} images in the folder", file=str(path))
    return np.stack([_decode(f, _size(options, path)) for f in files])
