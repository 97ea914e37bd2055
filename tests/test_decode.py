"""Real photos in awkward files and framings: the one decoder (emorec.sources.decode_image) and the engine find
the face in each, or say clearly why not. Every file is made here from scikit-image's astronaut photo."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from emorec.engine import EmotionRecognizer
from emorec.sources import ImageTooLargeError, InputError, UnsupportedImageError, decode_image, read_image
from emorec.track import iou_matrix
from emorec.web.media import MediaError
from emorec.web.media import decode_image as web_decode_image

ASTRONAUT_FACE = (175, 70, 278, 174)  # drawn by hand, as in test_detect.py
WEB_LIMIT = 40_000_000


@pytest.fixture(scope="module")
def astronaut_rgb() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _the_astronaut_is_found(rec: EmotionRecognizer, bgr: np.ndarray, face=ASTRONAUT_FACE) -> None:
    faces = rec(bgr)
    assert len(faces) == 1, [f.box for f in faces]
    assert iou_matrix([faces[0].box], [face])[0, 0] > 0.6, faces[0].box
    assert faces[0].emotion == "happy"  # she smiles


def _upright_gray(astronaut_rgb: Image.Image) -> np.ndarray:
    return np.asarray(astronaut_rgb.convert("L"))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(rec, astronaut_rgb, orientation):
    # A phone stores the sensor's pixels and says in EXIF how to turn them (3: 180, 6: 90 cw, 8: 90 ccw).
    stored = astronaut_rgb.transpose(
        {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    )
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    bgr = decode_image(data)
    assert bgr.shape == (512, 512, 3)
    _the_astronaut_is_found(rec, bgr)
    # Without its EXIF block the same pixels lie on their side: the face is elsewhere, or not found.
    sideways = rec(decode_image(_encode(stored, "JPEG", quality=95)))
    assert not sideways or iou_matrix([sideways[0].box], [ASTRONAUT_FACE])[0, 0] < 0.3


def test_grayscale_jpeg(rec, astronaut_rgb):
    _the_astronaut_is_found(rec, decode_image(_encode(astronaut_rgb.convert("L"), "JPEG", quality=95)))


def test_16_bit_grayscale_png_keeps_its_tones(rec, astronaut_rgb, tmp_path):
    gray8 = _upright_gray(astronaut_rgb)
    path = tmp_path / "astronaut16.png"
    cv2.imwrite(str(path), gray8.astype(np.uint16) * 257)  # full 16-bit range, as scanners and DICOM exports write
    assert Image.open(path).mode.startswith("I")  # really 16 bits per pixel
    for bgr in (read_image(path), web_decode_image(path.read_bytes(), WEB_LIMIT)):
        # Pillow's own convert("L") clips 16-bit values at 255 and reads the photo almost white.
        assert np.abs(bgr[:, :, 0].astype(int) - gray8).max() <= 1
        _the_astronaut_is_found(rec, bgr)


def test_cmyk_jpeg(rec, astronaut_rgb):
    data = _encode(astronaut_rgb.convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    bgr = decode_image(data)
    assert np.abs(bgr.astype(int) - np.asarray(astronaut_rgb)[:, :, ::-1]).mean() < 6  # colours, not negatives
    _the_astronaut_is_found(rec, bgr)


def test_mpo_from_a_phone_camera_is_read_as_its_first_view(rec, astronaut_rgb):
    second_view = astronaut_rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    data = _encode(astronaut_rgb, "MPO", save_all=True, append_images=[second_view], quality=95)
    assert Image.open(io.BytesIO(data)).format == "MPO"
    _the_astronaut_is_found(rec, decode_image(data))
    _the_astronaut_is_found(rec, web_decode_image(data, WEB_LIMIT))  # the web app refused these with 415


def test_truncated_and_corrupt_files_say_so(astronaut_rgb, tmp_path):
    jpeg = _encode(astronaut_rgb, "JPEG", quality=95)
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg[: len(jpeg) // 2])
    with pytest.raises(InputError, match=r"cut\.jpg: corrupt or truncated JPEG image"):
        read_image(path)
    with pytest.raises(MediaError, match="truncated") as info:
        web_decode_image(jpeg[: len(jpeg) // 2], WEB_LIMIT)
    assert info.value.status == 400
    with pytest.raises(UnsupportedImageError, match="not an image"):
        decode_image(b"\xff\xd8\xff\xe0 this is no JPEG at all" * 10, "photo.jpg")


def test_web_formats_and_limits_keep_their_statuses(astronaut_rgb):
    with pytest.raises(MediaError, match="unsupported image format TIFF") as info:
        web_decode_image(_encode(astronaut_rgb, "TIFF"), WEB_LIMIT)
    assert info.value.status == 415
    with pytest.raises(MediaError, match="megapixels") as info:
        web_decode_image(_encode(astronaut_rgb, "PNG"), 512 * 511)
    assert info.value.status == 413
    with pytest.raises(ImageTooLargeError, match="the limit is 0 megapixels"):
        decode_image(_encode(astronaut_rgb, "PNG"), max_pixels=1000)
    # The CLI and the engine read any format Pillow reads.
    assert decode_image(_encode(astronaut_rgb, "TIFF")).shape == (512, 512, 3)


@pytest.mark.parametrize("side", ["left", "top"])
def test_a_face_touching_the_border_is_found(rec, astronaut_rgb, side):
    bgr = np.asarray(astronaut_rgb)[:, :, ::-1]
    x1, y1, x2, y2 = ASTRONAUT_FACE
    if side == "left":
        _the_astronaut_is_found(rec, np.ascontiguousarray(bgr[:, x1:]), (0, y1, x2 - x1, y2))
    else:
        _the_astronaut_is_found(rec, np.ascontiguousarray(bgr[y1:]), (x1, 0, x2, y2 - y1))


@pytest.mark.xfail(strict=True, reason="known regression of the default's full-range scan (docs/detection.md): "
                   "half a face at the frame's edge scores under 0.1 scanned at 0.4, 0.50 letterboxed")
def test_a_face_cut_in_half_is_still_found_but_not_without_its_eyes(rec, astronaut_rgb):
    bgr = np.asarray(astronaut_rgb)[:, :, ::-1]
    x1, y1, x2, y2 = ASTRONAUT_FACE
    half = np.ascontiguousarray(bgr[:, (x1 + x2) // 2 :])
    faces = rec(half)
    assert len(faces) == 1 and faces[0].box[0] == 0
    no_eyes = np.ascontiguousarray(bgr[y1 + (y2 - y1) // 2 :])  # only nose, mouth and chin left
    assert rec(no_eyes) == []


def test_huge_and_tiny_faces(rec, astronaut_rgb):
    bgr = np.ascontiguousarray(np.asarray(astronaut_rgb)[:, :, ::-1])
    x1, y1, x2, y2 = ASTRONAUT_FACE
    # The face filling the whole frame (a webcam at arm's length), enlarged 4x: short range's job.
    close_up = cv2.resize(bgr[y1:y2, x1:x2], None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    faces = rec(close_up)
    assert len(faces) == 1 and iou_matrix([faces[0].box], [(0, 0, *close_up.shape[1::-1])])[0, 0] > 0.7
    # A big photo (4000x4000): the face is 800 pixels wide.
    big = cv2.resize(bgr, (4000, 4000), interpolation=cv2.INTER_CUBIC)
    scaled = tuple(v * 4000 / 512 for v in ASTRONAUT_FACE)
    _the_astronaut_is_found(rec, big, scaled)
    # A 48-pixel face in a 640x480 frame is found; below min_face_size (24 px) faces are not reported.
    frame = np.full((480, 640, 3), 120, np.uint8)
    for width, found in ((48, True), (16, False)):
        scale = width / (x2 - x1)
        small = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        canvas = frame.copy()
        canvas[100 : 100 + small.shape[0], 200 : 200 + small.shape[1]] = small
        assert len(rec(canvas)) == int(found), width


def test_the_web_api_reads_16_bit_png_and_mpo(rec, astronaut_rgb):
    pytest.importorskip("a2wsgi", reason="the web app needs the 'web' extra: pip install 'emorec[web]'")
    from emorec.web import create_app

    client = create_app(rec).test_client()
    gray16 = cv2.imencode(".png", _upright_gray(astronaut_rgb).astype(np.uint16) * 257)[1].tobytes()
    mpo = _encode(astronaut_rgb, "MPO", save_all=True, append_images=[astronaut_rgb], quality=95)
    for body in (gray16, mpo):
        answer = client.post("/api/v1/analyze", data=body, content_type="application/octet-stream")
        assert answer.status_code == 200, answer.get_json()
        (face,) = answer.get_json()["faces"]
        assert iou_matrix([face["box"]], [ASTRONAUT_FACE])[0, 0] > 0.6 and face["emotion"] == "happy"


def _progressive_jpeg_with_scans(extra_scans: int, size: int = 1448) -> bytes:
    """A progressive JPEG with ``extra_scans`` copies of its last scan's header spliced in before its end,
    each with one byte of data: the issue's scan bomb (a 233 KB file with 20,000 took 2.8 s of CPU)."""
    data = _encode(Image.new("RGB", (size, size), (90, 120, 200)), "JPEG", progressive=True)
    last = data.rindex(b"\xff\xda")
    header = data[last : last + 2 + int.from_bytes(data[last + 2 : last + 4], "big")]
    return data[:-2] + (header + b"\x00") * extra_scans + b"\xff\xd9"


def test_a_jpeg_with_thousands_of_scans_is_refused_before_decoding(astronaut_rgb):
    """Issue 25, finding 2: decode CPU was unbounded; now the scans are counted from the segment headers."""
    import time

    from emorec.sources import MAX_JPEG_SCANS, count_jpeg_scans

    bomb = _progressive_jpeg_with_scans(20_000)
    started = time.process_time()
    with pytest.raises(InputError, match="more than 100 scans") as info:
        decode_image(bomb, "bomb.jpg")
    assert time.process_time() - started < 0.1  # decoding it took 2.8 s
    assert not isinstance(info.value, (UnsupportedImageError, ImageTooLargeError))
    with pytest.raises(MediaError, match="scans") as info:
        web_decode_image(bomb, WEB_LIMIT)
    assert info.value.status == 400
    # Ordinary progressive JPEGs (10 scans), and ones with up to the limit, still decode; a baseline JPEG has one.
    progressive = _encode(astronaut_rgb, "JPEG", progressive=True, quality=90)
    assert count_jpeg_scans(progressive, MAX_JPEG_SCANS) == 10
    assert decode_image(progressive).shape == (512, 512, 3)
    assert decode_image(_progressive_jpeg_with_scans(MAX_JPEG_SCANS - 10, size=64)).shape == (64, 64, 3)
    assert count_jpeg_scans(_encode(astronaut_rgb, "JPEG", quality=90), MAX_JPEG_SCANS) == 1
