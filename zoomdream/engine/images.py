"""Reading and writing still images, and moving them between numpy (H×W×3 RGB) and torch
(1×3×H×W float in [0, 1]). Every malformed input turns into a UserError here, so the rest of
the pipeline only ever sees clean float RGB.

Photos are read as a viewer shows them: Pillow decodes them, the EXIF orientation is applied
(a portrait phone photo is stored sideways with a "rotate" tag), an embedded ICC profile is
converted to sRGB (the network was trained on sRGB; a wide-gamut Display P3 or Adobe RGB photo
read raw looks washed out), and transparency is composited on mid-grey (BACKGROUND).
Stills in a labelled grid (the atlas, a batch's contact sheet) are put together here too."""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageCms, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from ..base.errors import UserError, write_error
from ..base.paths import input_file, read_bytes
from ..base.settings import IMAGE_MAX_SIDE, IMAGE_MIN_SIDE

# Refused from the header, before decoding: a 100000×100000 PNG never allocates 30 GB.
MAX_PIXELS = IMAGE_MAX_SIDE * IMAGE_MAX_SIDE
# What shows through transparent pixels: mid-grey, because black or white would start the
# dream from a flat extreme that takes many frames to fill with structure.
BACKGROUND = 0.5
_SRGB = ImageCms.createProfile("sRGB")


def load_image(path: str | os.PathLike, what: str = "input image") -> np.ndarray:
    """Decode a PNG, JPEG, WebP, TIFF, BMP or GIF (grey, 16-bit, alpha, CMYK, palette; the
    first frame of an animation) into float32 sRGB in [0, 1], upright."""
    p = input_file(path, what)
    return decode_image(read_bytes(p, what), f"{what} {p}")


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """`load_image` of bytes already read (an upload); `name` names them in messages."""
    if not data:
        raise UserError(f"{name} is empty (0 bytes)", "give a real image file")
    unreadable = UserError(f"{name} is not a readable image (corrupt, truncated or not an image)",
                           "give a PNG, JPEG, WebP, TIFF, BMP or GIF file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise UserError(f"{name} is too large ({im.width}×{im.height}, over "
                                    f"{MAX_PIXELS // 1_000_000} megapixels)", "downscale it first")
                im.seek(0)
                im.load()
                return _to_rgb_float(_to_srgb(ImageOps.exif_transpose(im)))
    except Image.DecompressionBombError:
        raise UserError(f"{name} is too large (over {MAX_PIXELS // 1_000_000} megapixels)",
                        "downscale it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error):
        raise unreadable from None


def _to_srgb(im: Image.Image) -> Image.Image:
    """Convert an image with an embedded ICC profile to sRGB (alpha kept aside)."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK", "L", "LA"):
        return im
    alpha = im.getchannel("A") if im.mode in ("RGBA", "LA") else None
    base = im.convert("RGB" if im.mode == "RGBA" else "L") if alpha is not None else im
    try:
        out = ImageCms.profileToProfile(base, ImageCms.ImageCmsProfile(io.BytesIO(icc)), _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return im  # a broken profile: show the pixels as they are, like most viewers do
    if alpha is not None:
        out.putalpha(alpha)
    return out


def _to_rgb_float(im: Image.Image) -> np.ndarray:
    if im.mode.startswith("I") or im.mode == "F":  # 16/32-bit grey
        a = np.asarray(im, dtype=np.float32)
        a = a / 65535.0 if im.mode != "F" else a
        return np.ascontiguousarray(np.repeat(np.clip(a, 0, 1)[..., None], 3, axis=2))
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info:
        a = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = a[..., 3:4]
        return np.ascontiguousarray(a[..., :3] * alpha + BACKGROUND * (1 - alpha))
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def save_image(path: str | os.PathLike, image: np.ndarray | torch.Tensor) -> None:
    """Write an image (float in [0, 1] or uint8) by its extension: PNG for lossless frames."""
    path = Path(path)
    ok, buf = cv2.imencode(path.suffix or ".png", np.ascontiguousarray(to_uint8(image)[..., ::-1]))
    if not ok:
        raise UserError(f"cannot encode an image as {path.suffix}", "use .png or .jpg")
    try:
        path.write_bytes(buf.tobytes())
    except OSError as e:
        raise write_error(path, e) from None


def to_uint8(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """1×3×H×W or 3×H×W tensor, or H×W×3 float array, in [0, 1] → H×W×3 uint8, rounded half to
    even on every path (OpenCV's rounding), so a frame has the same bytes from a GPU or the CPU."""
    if isinstance(image, torch.Tensor):
        x = image.detach().squeeze(0).float().clamp(0, 1)
        if x.device.type == "cpu" and x.dim() == 3 and x.shape[0] == 3:
            # OpenCV scales, rounds and interleaves in a pass per plane: 0.1 ms at 512²
            # against 1.7 for torch's float→uint8 (an in-between frame costs ~15 ms in all).
            return cv2.merge([cv2.convertScaleAbs(p, alpha=255) for p in x.contiguous().numpy()])
        # Rounded where the frame is: from a GPU one byte per value crosses the bus instead of
        # four, and the host does no arithmetic.
        return (x.permute(1, 2, 0) * 255).round_().to(torch.uint8).contiguous().cpu().numpy()
    if image.dtype == np.uint8:
        return image
    return np.ascontiguousarray(np.rint(np.clip(image, 0, 1) * 255), dtype=np.uint8)


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


def load_picture(path: str | os.PathLike, what: str = "input image") -> np.ndarray:
    """`load_image`, refused in one line (naming the file) where it is too small to dream."""
    image = load_image(path, what)
    check_min_size(image, f"{what} {path}")
    return image


def check_min_size(image: np.ndarray, what: str) -> None:
    h, w = image.shape[:2]
    if min(h, w) < IMAGE_MIN_SIDE:
        raise UserError(f"{what} is only {w}×{h} px", f"use an image at least {IMAGE_MIN_SIDE} px on each side")


def grey(image: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Rec. 601 luma: an H×W×3 uint8 RGB frame as H×W uint8 (OpenCV's, which the optical-flow
    methods take), or a 1×3×H×W tensor as an H×W tensor."""
    if isinstance(image, torch.Tensor):
        r, g, b = image[0]
        return 0.299 * r + 0.587 * g + 0.114 * b
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


LABEL_HEIGHT = 18
GAP = 2


def labelled(tile: np.ndarray, text: str) -> np.ndarray:
    """The tile above a dark strip carrying its label."""
    h, w = tile.shape[:2]
    strip = Image.new("RGB", (w, LABEL_HEIGHT), (16, 16, 16))
    font = ImageFont.load_default(size=12)
    draw = ImageDraw.Draw(strip)
    while len(text) > 4 and draw.textlength(text, font=font) > w - 6:  # a narrow cell keeps the start
        text = text[:-2].rstrip(" ·") + "…"
    draw.text((3, 2), text, fill=(235, 235, 235), font=font)
    return np.vstack([tile, np.asarray(strip)])


def grid(tiles: list[np.ndarray], cols: int | None = None) -> np.ndarray:
    """Tiles of one size in rows of `cols`, or as square an arrangement as the count allows."""
    n = len(tiles)
    cols = cols or int(np.ceil(np.sqrt(n * tiles[0].shape[0] / tiles[0].shape[1])))
    rows = -(-n // cols)
    th, tw = tiles[0].shape[:2]
    out = np.full((rows * th + (rows - 1) * GAP, cols * tw + (cols - 1) * GAP, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        y, x = divmod(i, cols)
        out[y * (th + GAP) : y * (th + GAP) + th, x * (tw + GAP) : x * (tw + GAP) + tw] = t
    return out
