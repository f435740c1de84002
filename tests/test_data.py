import numpy as np
import pytest
from PIL import Image

from nin_export.core.data import DataError, Preprocess, open_source, split_indices

PRE = Preprocess((32, 32), 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_split_is_fixed_and_disjoint():
    a_train, a_test = split_indices(100)
    b_train, b_test = split_indices(100)
    assert np.array_equal(a_train, b_train) and np.array_equal(a_test, b_test)
    assert len(a_test) == 20 and not set(a_train) & set(a_test)


def test_preprocess_resize_crop_normalize():
    img = Image.new("RGB", (64, 48), (128, 0, 255))
    x = PRE.image(img)
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 16, 16], [(128 / 255 - 0.5) / 0.25, -2.0, 2.0], atol=1e-5)
    cropped = Preprocess((32, 32), 1, (0.5,), (0.5,), crop_pct=0.875).image(img)
    assert cropped.shape == (1, 32, 32)


def test_image_folder_recursive_skips_and_converts(tmp_path):
    for cls in ("cat", "dog"):
        (tmp_path / cls / "deep").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 40), (i * 40, 10, 10)).save(tmp_path / cls / f"{i}.png")
        Image.new("L", (40, 40), 200).save(tmp_path / cls / "deep" / "gray.jpg")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "dog" / "broken.png").write_bytes(b"\x89PNG garbage")
    src = open_source(tmp_path, PRE)
    assert len(src) == 9 and src.classes == ["cat", "dog"]
    s = src.load(range(len(src)))
    assert s.x.shape == (8, 3, 32, 32)
    assert {k: v for k, v in s.skipped.items() if v} == {"files that are not images": 1, "images that failed to decode": 1}
    assert s.converted == {"L->RGB": 2}
    assert sorted(set(s.y.tolist())) == [0, 1]
    assert any("converted 2 images from L to RGB" in n for n in s.notes())


def test_npy_and_npz(tmp_path):
    x = np.random.default_rng(0).standard_normal((20, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    s = open_source(tmp_path / "x.npy", PRE).load([0, 5])
    np.testing.assert_array_equal(s.x, x[[0, 5]])
    u8 = np.full((4, 3, 32, 32), 255, np.uint8)
    np.savez(tmp_path / "d.npz", images=u8, labels=np.arange(4))
    s = open_source(tmp_path / "d.npz", PRE).load([1, 2])
    np.testing.assert_allclose(s.x, 2.0) and np.testing.assert_array_equal(s.y, [1, 2])
    np.save(tmp_path / "nhwc.npy", np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(DataError, match="NCHW"):
        open_source(tmp_path / "nhwc.npy", PRE)


def test_builtin_digits_are_real_and_labelled():
    src = open_source("digits", PRE)
    assert len(src) == 1797
    s = src.load([0, 1, 2])
    assert s.x.shape == (3, 3, 32, 32) and s.y.tolist() == [0, 1, 2]
    assert float(s.x.std()) > 0.1


def test_bad_sources(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_source(tmp_path / "nope", PRE)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    with pytest.raises(DataError, match="no images"):
        open_source(tmp_path / "empty", PRE)
    with pytest.raises(DataError, match="--synthetic"):
        open_source("synthetic", PRE)
    assert open_source("synthetic", PRE, allow_synthetic=True).synthetic


def test_deep_and_float_images_are_scaled_not_clipped(tmp_path):
    """16-bit images scale by 65535, float images in [0, 1] are taken as they are; nothing clips at 255."""
    gray = Preprocess((8, 8), 1, (0.0,), (1.0,))
    (tmp_path / "a").mkdir()
    Image.fromarray(np.full((8, 8), 65535 // 2, np.uint16)).save(tmp_path / "a" / "half16.png")
    Image.fromarray(np.full((8, 8), 0.25, np.float32), mode="F").save(tmp_path / "a" / "quarter.tif")
    Image.fromarray(np.full((8, 8), 7.0, np.float32), mode="F").save(tmp_path / "a" / "seven.tif")
    s = open_source(tmp_path, gray).load(range(3))
    values = sorted(float(x.mean()) for x in s.x)
    assert values == pytest.approx([0.25, 0.5], abs=1e-3)
    assert sum(s.skipped.values()) == 1 and any("outside" in k for k, v in s.skipped.items() if v)


def test_decompression_bombs_are_skipped_with_a_reason(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    (tmp_path / "a").mkdir()
    Image.new("L", (64, 64)).save(tmp_path / "a" / "big.png")
    Image.new("L", (8, 8)).save(tmp_path / "a" / "small.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # 64x64 is 4x over: a "bomb" at this limit
    s = open_source(tmp_path, PRE).load(range(2))
    assert len(s.x) == 1 and any("decompression-bomb" in n for n in s.notes())
