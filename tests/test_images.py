"""Photos as cameras and editors write them: EXIF orientation, embedded colour profiles and
transparency are read the way an image viewer shows them."""

import struct

import numpy as np
from PIL import Image

from conftest import run_cli
from zoomdream.engine.images import BACKGROUND, load_image


def _two_colour(w=120, h=80) -> np.ndarray:
    """Stored landscape: red top half, blue bottom half."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, :, 0] = 255
    a[h // 2 :, :, 2] = 255
    return a


def _with_orientation(path, pixels: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, quality=95, exif=exif)


def test_exif_orientation_is_applied(tmp_path):
    # Orientation 6: the camera was turned a quarter clockwise, so the stored landscape rows
    # are shown rotated 90° clockwise: portrait, with the stored top (red) on the right.
    _with_orientation(tmp_path / "p.jpg", _two_colour(), 6)
    img = load_image(tmp_path / "p.jpg")
    assert img.shape == (120, 80, 3)
    right, left = img[:, 40:], img[:, :40]
    assert right[..., 0].mean() > 0.9 and left[..., 2].mean() > 0.9
    _with_orientation(tmp_path / "q.jpg", _two_colour(), 3)  # upside down
    assert load_image(tmp_path / "q.jpg")[-10:, :, 0].mean() > 0.9


def test_portrait_phone_photo_dreams_to_a_portrait_output(tmp_path, photo):
    # A phone held upright stores its sensor's landscape rows and tags them "rotate 90° CW".
    _with_orientation(tmp_path / "phone.jpg", (photo * 255).astype(np.uint8), 6)
    r = run_cli("dream", tmp_path / "phone.jpg", "-o", tmp_path / "out.png", "--size", "64", "--octaves", "1",
                "--steps", "1", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    h, w = load_image(tmp_path / "out.png").shape[:2]
    assert (w, h) == (43, 64)  # portrait, as the phone showed it


def _icc_profile(red, green, blue, gamma=2.2) -> bytes:
    """A minimal ICC v2 RGB matrix/TRC display profile with the given D50 colorants."""

    def s15(v):
        return struct.pack(">i", round(v * 65536))

    def xyz(v):
        return b"XYZ \0\0\0\0" + b"".join(s15(c) for c in v)

    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    text = b"desc\0\0\0\0" + struct.pack(">I", 5) + b"test\0" + b"\0" * 12 + b"\0" * 67
    tags = [(b"desc", text), (b"wtpt", xyz((0.9642, 1.0, 0.8249))), (b"rXYZ", xyz(red)), (b"gXYZ", xyz(green)),
            (b"bXYZ", xyz(blue)), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ " + b"\0" * 12
              + b"acsp" + b"\0" * 24 + struct.pack(">I", 0) + s15(0.9642) + s15(1.0) + s15(0.8249) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


SRGB_D50 = [(0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)]


def test_embedded_colour_profile_is_converted_to_srgb(tmp_path):
    # A profile that says the file's first channel is sRGB's blue primary and its third is red:
    # converted properly, a file that is "red" in its raw numbers shows blue.
    r, g, b = SRGB_D50
    swapped = _icc_profile(b, g, r)
    raw = np.zeros((32, 32, 3), np.uint8)
    raw[..., 0] = 255
    Image.fromarray(raw).save(tmp_path / "swapped.png", icc_profile=swapped)
    Image.fromarray(raw).save(tmp_path / "plain.png")
    Image.fromarray(raw).save(tmp_path / "srgb.png", icc_profile=_icc_profile(r, g, b))
    shown = load_image(tmp_path / "swapped.png").mean((0, 1))
    assert shown[2] > 0.9 and shown[0] < 0.1, shown
    for name in ("plain.png", "srgb.png"):  # no profile, or sRGB's own: the numbers as they are
        assert np.allclose(load_image(tmp_path / name).mean((0, 1)), [1, 0, 0], atol=0.02), name
    (tmp_path / "broken.png").write_bytes(b"")
    Image.fromarray(raw).save(tmp_path / "broken.png", icc_profile=b"not a profile")
    assert load_image(tmp_path / "broken.png")[..., 0].mean() > 0.9  # a broken profile is ignored


def test_transparency_is_composited_on_mid_grey(tmp_path):
    a = np.zeros((8, 8, 4), np.uint8)
    a[..., :3] = 255  # white
    a[:, :4, 3] = 0  # left: fully transparent
    a[:, 4:, 3] = 128  # right: half transparent
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert BACKGROUND == 0.5
    assert np.allclose(img[:, :4], 0.5, atol=1e-6)
    assert np.allclose(img[:, 4:], 0.5 + 0.5 * 128 / 255, atol=1e-6)
    pal = Image.fromarray(a, "RGBA").convert("P", palette=Image.Palette.ADAPTIVE)  # palette + tRNS
    la = Image.fromarray(a[..., [0, 3]], "LA")
    pal.save(tmp_path / "p.png")
    la.save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png")[0, 0].tolist() == [0.5, 0.5, 0.5]
    assert load_image(tmp_path / "p.png").shape == (8, 8, 3)
