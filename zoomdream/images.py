"""Reading and writing still images, and moving them between numpy (H×W×3 RGB) and torch
(1×3×H×W float in [0, 1]). Every malformed input turns into a UserError here, so the rest of
the pipeline only ever sees clean float RGB."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

# Refuse absurd headers before decoding: OpenCV checks width×height against this limit while
# reading the header, so a 100000×100000 PNG never allocates 30 GB.
MAX_PIXELS = 1 << 28  # 16384×16384
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")

import cv2  # noqa: E402  (reads the environment above at import)

from .errors import UserError  # noqa: E402

MIN_SIDE = 16


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode any image cv2 reads (grey, 16-bit, alpha, CMYK JPEG, first frame of a GIF) into
    float32 RGB in [0, 1]."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"image not found: {p}", "check the path")
    if p.is_dir():
        raise UserError(f"{p} is a folder, not an image", "give an image file")
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as e:
        raise UserError(f"cannot read {p}: {e.strerror}", "check the file's permissions") from None
    if data.size == 0:
        raise UserError(f"{p} is empty (0 bytes)", "give a real image file")
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        raise UserError(
            f"{p} is too large (over {MAX_PIXELS // 1_000_000} megapixels) or malformed",
            "downscale it first",
        ) from None
    if img is None:
        raise UserError(f"{p} is not a readable image (corrupt, truncated or not an image)",
                        "give a PNG, JPEG, WebP, TIFF, BMP or GIF file")
    return _to_rgb_float(img)


def _to_rgb_float(img: np.ndarray) -> np.ndarray:
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype)
    img = img.astype(np.float32) / scale if scale else np.clip(img.astype(np.float32), 0, 1)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.shape[2] == 4:
        # Composite transparency onto mid-grey: black would start the dream in the dark.
        alpha = img[..., 3:4]
        img = img[..., :3] * alpha + 0.5 * (1 - alpha)
    elif img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[..., 2::-1])  # BGR → RGB


def save_image(path: str | os.PathLike, image: np.ndarray | torch.Tensor) -> None:
    """Write an image (float in [0, 1] or uint8) losslessly by extension (PNG for frames)."""
    arr = to_uint8(image)
    ok = cv2.imwrite(str(path), arr[..., ::-1])
    if not ok:
        raise UserError(f"cannot write image {path}", "check the folder exists and is writable")


def to_uint8(image: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = to_numpy(image)
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """H×W×3 (uint8 or float) → 1×3×H×W float32."""
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    return t.permute(2, 0, 1).unsqueeze(0).to(device)


def to_numpy(image: torch.Tensor) -> np.ndarray:
    """1×3×H×W float → H×W×3 float32 on the host."""
    return image.detach().squeeze(0).permute(1, 2, 0).float().cpu().numpy()


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to cover width×height, then centre-crop: a photo fills the frame, never letterboxed."""
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    nw, nh = max(width, round(w * scale)), max(height, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    y, x = (nh - height) // 2, (nw - width) // 2
    return np.clip(resized[y : y + height, x : x + width], 0, 1)


def resize_long_side(image: np.ndarray, size: int) -> np.ndarray:
    """Scale so the long side is `size` pixels (keeps the aspect ratio)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.clip(cv2.resize(image, (nw, nh), interpolation=interp), 0, 1)


def check_min_size(image: np.ndarray, what: str) -> None:
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise UserError(f"{what} is only {w}×{h} px", f"use an image at least {MIN_SIDE} px on each side")
