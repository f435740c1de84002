"""Real images for calibration and evaluation, preprocessed the way the model's metadata says.

Sources (``open_source``):
- a directory of images (PNG/JPEG/BMP/..., searched recursively; one sub-directory per class
  gives labels); files that are not images, and images that fail to decode, are skipped and counted;
- a ``.npy``/``.npz`` array in model layout (N, C, H, W): float arrays are taken as already
  normalized, uint8 arrays as pixels (scaled to [0, 1], then normalized); an ``.npz`` may carry
  labels under ``y``/``labels``;
- ``digits``: scikit-learn's bundled handwritten digits (1,797 real 8x8 scans, 10 classes), so
  the default demo needs no download;
- ``synthetic``: standard-normal noise, only when asked for explicitly; accuracy figures from it
  mean nothing.

Every source is split once, deterministically, into train and test indices, so calibration
(train part) and held-out checks or evaluation (test part) never share an image.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from .defaults import DEFAULT_DATA
from .errors import NinExportError

__all__ = [
    "Preprocess",
    "DataSource",
    "Samples",
    "open_source",
    "split_indices",
    "IMAGE_EXTENSIONS",
    "DataError",
    "DEFAULT_DATA",
]

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
BUILTIN = (DEFAULT_DATA,)
SYNTHETIC = "synthetic"


class DataError(NinExportError):
    """Unusable calibration or evaluation data."""


class ModelDefaults(Protocol):
    """What preprocessing needs of a registered model's spec (``models.ModelSpec`` is one)."""

    @property
    def in_channels(self) -> int: ...
    @property
    def input_size(self) -> tuple[int, int]: ...
    @property
    def mean(self) -> tuple[float, ...]: ...
    @property
    def std(self) -> tuple[float, ...]: ...
    @property
    def crop_pct(self) -> float: ...


@dataclass(frozen=True)
class Preprocess:
    """Resize (shorter side to size / crop_pct), center-crop, channels, [0, 1], (x - mean) / std."""

    input_size: tuple[int, int]
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float = 1.0

    @classmethod
    def for_spec(cls, spec: ModelDefaults, in_channels: int, input_size: Sequence[int]) -> "Preprocess":
        """A registered model's preprocessing at the channels and size it was built with: the spec's
        per-channel mean/std, or their average repeated when the channel count differs."""

        def per_channel(v: tuple[float, ...]) -> tuple[float, ...]:
            return tuple(v) if in_channels == len(v) else (float(np.mean(v)),) * in_channels

        h, w = input_size
        return cls((h, w), in_channels, per_channel(spec.mean), per_channel(spec.std), spec.crop_pct)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.in_channels, *self.input_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """(N, C, H, W) in [0, 1] -> normalized float32."""
        mean = np.asarray(self.mean, np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(1, -1, 1, 1)
        return ((pixels - mean) / std).astype(np.float32)

    def image(self, img: "Any") -> np.ndarray:
        """A PIL image -> (C, H, W) float32, normalized. 8-bit images are scaled by 255; 16-bit ones by
        65535 and float ones taken as [0, 1] (outside it: ValueError), never clipped to 8 bits."""
        from PIL import Image

        h, w = self.input_size
        if img.mode.startswith("I") or img.mode == "F":
            img = Image.fromarray(_unit_range(img), mode="F")  # one channel, in [0, 1]
            scale = 1.0
        else:
            img = img.convert("RGB" if self.in_channels == 3 else "L")
            scale = 255.0
        if self.crop_pct < 1.0:
            ratio = max(h, w) / self.crop_pct / min(img.size)
            img = img.resize((max(w, round(img.size[0] * ratio)), max(h, round(img.size[1] * ratio))), Image.Resampling.BILINEAR)
            left, top = (img.size[0] - w) // 2, (img.size[1] - h) // 2
            img = img.crop((left, top, left + w, top + h))
        else:
            img = img.resize((w, h), Image.Resampling.BILINEAR)
        arr = np.asarray(img, np.float32) / scale
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        if arr.shape[0] != self.in_channels:  # e.g. a 1-channel image for a 4-channel model
            arr = np.repeat(arr[:1], self.in_channels, axis=0)
        return self.normalize(arr[None])[0]


def _unit_range(img: Any) -> np.ndarray:
    """A 16/32-bit integer or float PIL image as float32 in [0, 1]."""
    arr = np.asarray(img, np.float64)
    if img.mode == "F":
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ValueError("a float image with values outside [0, 1]")
        return arr.astype(np.float32)
    if arr.min() < 0 or arr.max() > 65535:
        raise ValueError("a 32-bit image with values outside 0..65535")
    return (arr / 65535.0).astype(np.float32)


@dataclass
class Samples:
    """Preprocessed inputs (N, C, H, W) float32, labels (N,) or None, and what happened on the way."""

    x: np.ndarray
    y: np.ndarray | None
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    converted: dict[str, int] = field(default_factory=dict)  # "L->RGB" -> count
    scaled: str | None = None  # integer arrays: how their values became inputs

    @property
    def labels(self) -> np.ndarray:
        """``y``, for samples of a source with classes (which always carries labels)."""
        if self.y is None:
            raise DataError("these images carry no class labels: give one sub-directory per class, or an .npz with labels")
        return self.y

    def notes(self) -> list[str]:
        out = [f"skipped {n} {why}" for why, n in self.skipped.items() if n]
        out += [self.scaled] if self.scaled else []
        out += [
            f"converted {n} images from {conv.replace('->', ' to ')} to match the model's channels"
            for conv, n in self.converted.items()
            if n
        ]
        return out


def split_indices(n: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One fixed shuffle, then train | test. The same n and seed always give the same split."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction))) if n > 1 else 0
    return perm[n_test:], perm[:n_test]


Indices = Sequence[int] | np.ndarray  # positions in a source: a list, or an index array from ``split``


class DataSource:
    """A finite, indexable set of samples; ``load`` preprocesses only what is asked for."""

    name: str = "source"
    synthetic: bool = False
    classes: list[str] | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Identifies the data (not the preprocessing) for cache keys."""
        raise NotImplementedError

    def load(self, indices: Indices) -> Samples:
        raise NotImplementedError

    def split(self, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        return split_indices(len(self), test_fraction, seed)


class ImageFolder(DataSource):
    def __init__(self, root: Path, pre: Preprocess) -> None:
        self.root, self.pre = root, pre
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
        self.files = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
        self.not_images = len(files) - len(self.files)
        self.name = f"images:{root}"
        subdirs = sorted({p.relative_to(root).parts[0] for p in self.files if len(p.relative_to(root).parts) > 1})
        top_level = any(len(p.relative_to(root).parts) == 1 for p in self.files)
        self.classes = subdirs if subdirs and not top_level else None

    def __len__(self) -> int:
        return len(self.files)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for p in self.files:
            st = p.stat()
            h.update(f"{p.relative_to(self.root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def load(self, indices: Indices) -> Samples:
        from PIL import Image, UnidentifiedImageError

        want = "RGB" if self.pre.in_channels == 3 else "L"
        xs, ys = [], []
        skipped = {
            "files that are not images": self.not_images,
            "images that failed to decode": 0,
            f"images over {Image.MAX_IMAGE_PIXELS:,} pixels (decompression-bomb guard)": 0,
            "float or 32-bit images with values outside their range": 0,
        }
        converted: dict[str, int] = {}
        for i in indices:
            path = self.files[int(i)]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    with Image.open(path) as img:
                        img.load()
                        if img.mode not in (want, "P", "RGBA" if want == "RGB" else want):
                            key = f"{img.mode}->{want}"
                            converted[key] = converted.get(key, 0) + 1
                        xs.append(self.pre.image(img))
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                skipped[f"images over {Image.MAX_IMAGE_PIXELS:,} pixels (decompression-bomb guard)"] += 1
                continue
            except ValueError as e:
                key = (
                    "float or 32-bit images with values outside their range"
                    if "outside" in str(e)
                    else "images that failed to decode"
                )
                skipped[key] += 1
                continue
            except (UnidentifiedImageError, OSError, SyntaxError, EOFError):
                skipped["images that failed to decode"] += 1
                continue
            if self.classes:
                ys.append(self.classes.index(path.relative_to(self.root).parts[0]))
        x = np.stack(xs) if xs else np.zeros((0, *self.pre.shape), np.float32)
        return Samples(x, np.asarray(ys, np.int64) if self.classes else None, skipped, converted)


class ArrayFile(DataSource):
    def __init__(self, path: Path, pre: Preprocess) -> None:
        self.path, self.pre, self.name = path, pre, f"array:{path}"
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read '{path}' as a .npy/.npz array ({str(e)[:100]}); save it with numpy.save") from None
        labels = None
        if isinstance(data, np.lib.npyio.NpzFile):
            keys = list(data.keys())
            xkey = next((k for k in ("x", "images", "inputs", "data") if k in keys), keys[0] if keys else None)
            if xkey is None:
                raise DataError(f"'{path}' holds no arrays")
            arr = data[xkey]
            ykey = next((k for k in ("y", "labels", "targets") if k in keys), None)
            labels = data[ykey] if ykey else None
        else:
            arr = data
        arr, self.scaled = _pixel_array(arr, path)
        labels = _labels(labels, len(arr) if arr.ndim == 4 else 1, path)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or tuple(arr.shape[1:]) != pre.shape:
            raise DataError(
                f"array in '{path}' has shape {tuple(arr.shape)}, but the model takes (N, {', '.join(map(str, pre.shape))}) "
                f"in NCHW layout: transpose or resize it, or give a directory of images"
            )
        self.x, self.y = arr, labels
        self.classes = [str(i) for i in range(int(labels.max()) + 1)] if labels is not None and len(labels) else None

    def __len__(self) -> int:
        return len(self.x)

    def fingerprint(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.x).tobytes()).hexdigest()

    def load(self, indices: Indices) -> Samples:
        idx = np.asarray(indices, np.int64)
        x = self.x[idx]
        if self.scaled is not None:  # integer pixels: to [0, 1] by their range, then the model's normalization
            x = self.pre.normalize(x.astype(np.float32) / self.scaled[0])
        else:
            x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise DataError(f"'{self.path}' holds NaN or infinite values: clean the array before calibrating or evaluating")
        scaled = None if self.scaled is None else f"{self.path.name}: {self.scaled[1]}"
        return Samples(x, self.y[idx] if self.y is not None else None, scaled=scaled)


class Digits(DataSource):
    """scikit-learn's bundled handwritten digits: 1,797 real 8x8 grayscale scans, labels 0-9."""

    name = "digits"

    def __init__(self, pre: Preprocess) -> None:
        from sklearn.datasets import load_digits

        d = load_digits()
        self.images = (d.images / 16.0 * 255.0).round().astype(np.uint8)
        self.targets = d.target.astype(np.int64)
        self.pre = pre
        self.classes = [str(i) for i in range(10)]

    def __len__(self) -> int:
        return len(self.images)

    def fingerprint(self) -> str:
        return "sklearn-digits:" + hashlib.sha256(self.images.tobytes()).hexdigest()[:16]

    def load(self, indices: Indices) -> Samples:
        from PIL import Image

        idx = np.asarray(indices, np.int64)
        x = (
            np.stack([self.pre.image(Image.fromarray(self.images[i], "L")) for i in idx])
            if len(idx)
            else np.zeros((0, *self.pre.shape), np.float32)
        )
        return Samples(x, self.targets[idx])


class Synthetic(DataSource):
    name = SYNTHETIC
    synthetic = True

    def __init__(self, pre: Preprocess, n: int = 1024, seed: int = 0) -> None:
        self.pre, self.n, self.seed = pre, n, seed

    def __len__(self) -> int:
        return self.n

    def fingerprint(self) -> str:
        return f"synthetic:{self.n}:{self.seed}"

    def load(self, indices: Indices) -> Samples:
        rng = np.random.default_rng(self.seed)
        full = rng.standard_normal((self.n, *self.pre.shape)).astype(np.float32) if self.n * np.prod(self.pre.shape) < 5e8 else None
        if full is not None:
            return Samples(full[np.asarray(indices, np.int64)], None)
        return Samples(
            np.stack(
                [np.random.default_rng(self.seed + int(i)).standard_normal(self.pre.shape).astype(np.float32) for i in indices]
            ),
            None,
        )


def _pixel_array(arr: np.ndarray, path: Path) -> tuple[np.ndarray, tuple[float, str] | None]:
    """The array and, for integer pixels, (the divisor to [0, 1], what was done): uint8 by 255, uint16 by 65535,
    other integers by the range their values fill (0..255 or 0..65535), as images are. Floats are taken as
    already preprocessed; booleans, complex numbers and objects are refused."""
    kind = arr.dtype.kind
    if kind == "f":
        return arr, None
    if kind not in "iu":
        raise DataError(f"'{path}' holds {arr.dtype} values; give images as uint8/uint16 pixels or preprocessed float32")
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    if arr.dtype == np.uint8 or (arr.dtype != np.uint16 and lo >= 0 and hi <= 255):
        return arr, (255.0, f"{arr.dtype} values taken as 8-bit pixels (0..255), scaled to [0, 1] and normalized")
    if arr.dtype == np.uint16 or (lo >= 0 and hi <= 65535):
        return arr, (65535.0, f"{arr.dtype} values taken as 16-bit pixels (0..65535), scaled to [0, 1] and normalized")
    raise DataError(
        f"'{path}' holds {arr.dtype} values from {lo} to {hi}, which are no pixel values (0..255 or 0..65535): "
        f"scale them, or save preprocessed float32"
    )


def _labels(labels: np.ndarray | None, n: int, path: Path) -> np.ndarray | None:
    """Class indices: one non-negative integer per image. One-hot rows, floats with fractions, negatives and a
    count that differs from the images' are refused with what to do."""
    if labels is None:
        return None
    y = np.asarray(labels)
    if y.ndim != 1:
        raise DataError(f"labels in '{path}' have shape {y.shape}: give one class index per image (argmax one-hot labels)")
    if y.dtype.kind not in "iuf" or (y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all())):
        raise DataError(f"labels in '{path}' are {y.dtype} values that are not class indices: give integers 0..classes-1")
    if len(y) and y.min() < 0:
        raise DataError(f"labels in '{path}' include {int(y.min())}: class indices start at 0")
    if len(y) != n:
        raise DataError(f"'{path}' has {n} images but {len(y)} labels: give one label per image")
    return y.astype(np.int64)


def align_classes(source: DataSource, classes: list[str] | None, num_classes: int | None) -> None:
    """Make ``source``'s labels the model's class indices, or refuse data that cannot be scored against it:
    class folders are matched to the model's class names by name (a subset is fine), never by sort order;
    labels beyond the model's class count are refused."""
    if source.classes is None:
        return
    if isinstance(source, ImageFolder) and classes:
        unknown = [c for c in source.classes if c not in classes]
        if unknown:
            raise DataError(
                f"{source.name} has class folders the model was not trained on ({', '.join(unknown[:5])}); its classes "
                f"are {', '.join(classes[:10])}{'...' if len(classes) > 10 else ''}: name the folders after them"
            )
        source.classes = list(classes)  # labels are looked up by name in the model's order
    if num_classes is not None and len(source.classes) > num_classes:
        raise DataError(f"{source.name} has {len(source.classes)} classes and the model {num_classes}: give data of its classes")


def open_source(spec: str | os.PathLike, pre: Preprocess, allow_synthetic: bool = False) -> DataSource:
    """``digits``, ``synthetic`` (with ``allow_synthetic``), a directory of images, or a .npy/.npz file."""
    s = os.fspath(spec)
    if s in BUILTIN:
        return Digits(pre)
    if s == SYNTHETIC:
        if not allow_synthetic:
            raise DataError(
                "synthetic data makes accuracy figures meaningless: pass --synthetic to use it anyway, "
                "or give real images (a directory, a .npy/.npz, or 'digits')"
            )
        return Synthetic(pre)
    p = Path(s)
    if not p.exists():
        raise DataError(f"data source '{s}' not found: give a directory of images, a .npy/.npz file, or 'digits' (built in)")
    if p.is_dir():
        src = ImageFolder(p, pre)
        if not len(src):
            raise DataError(
                f"no images in '{p}' (searched recursively for {', '.join(sorted(IMAGE_EXTENSIONS))}; "
                f"{src.not_images} other files skipped)"
            )
        return src
    if p.suffix.lower() in (".npy", ".npz"):
        return ArrayFile(p, pre)
    raise DataError(f"'{p}' is neither a directory of images nor a .npy/.npz file")
