# fer_engine's inference against the apps' own: the same boxes and probabilities as fer_predict on
# the same photos and crops, arrays equal to files, bad inputs refused with messages that say
# why, and the GIL released while the model runs.
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

import fer_engine
from conftest import CHECKPOINT, FISH, FOUR, LENA, fer_predict, require

np = pytest.importorskip("numpy", reason="SKIPPED: numpy is absent (Debian package python3-numpy)")


def close(a, b, tol=1e-5):
    return all(abs(x - y) <= tol for x, y in zip(a, b)) and len(a) == len(b)


def test_module_finds_its_checkpoint_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no models/ here: the module's home is searched
    model = fer_engine.load()
    assert model.class_names == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert model.input_size == 48
    assert "fer_vgg_small" in repr(model) and "48x48" in model.describe()
    assert issubclass(fer_engine.Error, RuntimeError)


@pytest.mark.parametrize("photo_path", [LENA, FOUR, FISH], ids=["one face", "four faces", "no face"])
def test_detect_emotions_equals_fer_predict(photo_path):
    require(photo_path, "Debian package opencv-doc")
    expected = fer_predict(photo_path)[0]
    faces = fer_engine.FER(checkpoint=str(CHECKPOINT)).detect_emotions(str(photo_path))
    assert [f["box"] for f in faces] == [e["box"] for e in expected]
    for f, e in zip(faces, expected):
        assert all(type(v) is int for v in f["box"])
        assert list(f["emotions"]) == list(e["emotions"])  # class order
        assert close(list(f["emotions"].values()), list(e["emotions"].values()))


def test_top_emotion_is_the_largest_face_or_none(photo):
    detector = fer_engine.FER()
    expected = fer_predict(photo)[0][0]
    emotion, score = detector.top_emotion(photo)  # a pathlib.Path works as a str does
    assert emotion == expected["emotion"] and abs(score - expected["confidence"]) <= 1e-5
    if FISH.exists():
        assert detector.top_emotion(str(FISH)) == (None, None)


def test_arrays_bgr_rgb_rgba_and_bytes_equal_the_file(photo):
    Image = pytest.importorskip("PIL.Image", reason="SKIPPED: PIL is absent (Debian package python3-pil)")
    rgb = np.asarray(Image.open(photo).convert("RGB"))  # a PNG: the same pixels stb decodes
    detector = fer_engine.FER()
    expected = detector.detect_emotions(str(photo))
    assert len(expected) == 1
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # what cv2.imread gives
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    for got in (detector.detect_emotions(bgr), detector.detect_emotions(rgb, rgb=True),
                detector.detect_emotions(rgba, rgb=True), detector.detect_emotions(photo.read_bytes())):
        assert [f["box"] for f in got] == [f["box"] for f in expected]
        assert close(list(got[0]["emotions"].values()), list(expected[0]["emotions"].values()), 1e-6)
    # The wrong channel order changes the gray image, so (a little) the result.
    swapped = detector.detect_emotions(rgb)  # RGB read as BGR
    assert swapped and swapped[0]["emotions"] != expected[0]["emotions"]


def test_predict_equals_fer_predict_no_detect(tmp_path, photo):
    Image = pytest.importorskip("PIL.Image", reason="SKIPPED: PIL is absent (Debian package python3-pil)")
    gray = np.asarray(Image.open(photo).convert("L"))
    # Five gray crops of different sizes around the face, as PNG files and as arrays.
    crops = [gray[200 + d:393 - d, 208 + d:401 - d] for d in (0, 10, 20, 30, 40)]
    files = []
    for i, c in enumerate(crops):
        Image.fromarray(c).save(tmp_path / f"crop{i}.png")
        files.append(tmp_path / f"crop{i}.png")
    expected = [faces[0]["emotions"] for faces in fer_predict("--no-detect", *files)]
    model = fer_engine.load(str(CHECKPOINT))
    probs = model.predict([np.ascontiguousarray(c) for c in crops])
    assert isinstance(probs, np.ndarray) and probs.shape == (5, 7) and probs.dtype == np.float32
    for row, e in zip(probs, expected):
        assert close(row.tolist(), list(e.values()))
    assert np.allclose(model.predict(files), probs, atol=1e-6)  # paths
    # One N x H x W array of same-sized faces = the list of them; the detector's crops too.
    same = np.stack([np.ascontiguousarray(gray[200:248, 208:256])] * 3)
    assert np.allclose(model.predict(same), model.predict(list(same)), atol=1e-7)
    emotions = fer_engine.FER().predict_faces(same)
    assert close(list(emotions[0].values()), model.predict(same)[0].tolist(), 1e-6)


def test_bad_inputs_raise_with_the_reason(tmp_path):
    detector = fer_engine.FER()
    model = fer_engine.load()
    with pytest.raises(ValueError, match=r"uint8.*float32.*\(1, 48, 48\)"):
        model.predict(np.zeros((1, 48, 48), np.float32))
    with pytest.raises(ValueError, match=r"H x W, H x W x 3 or H x W x 4.*\(10, 10, 5\)"):
        detector.detect_emotions(np.zeros((10, 10, 5), np.uint8))
    with pytest.raises(ValueError, match=r"\(48,\)"):
        detector.detect_emotions(np.zeros(48, np.uint8))
    with pytest.raises(ValueError, match="C-contiguous"):
        detector.detect_emotions(np.zeros((64, 64, 3), np.uint8)[:, ::2])
    with pytest.raises(ValueError, match="one colour image"):
        model.predict(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(TypeError, match="got int"):
        detector.detect_emotions(42)
    with pytest.raises(fer_engine.Error, match="nowhere.jpg"):
        detector.detect_emotions(str(tmp_path / "nowhere.jpg"))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(fer_engine.Error, match="broken.jpg"):
        detector.detect_emotions(tmp_path / "broken.jpg")
    with pytest.raises(fer_engine.Error, match="missing.safetensors"):
        fer_engine.load(str(tmp_path / "missing.safetensors"))
    with pytest.raises(fer_engine.Error, match="scale_factor"):
        fer_engine.FER(scale_factor=0.5)
    with pytest.raises(ValueError, match="tta"):
        fer_engine.load(tta="sideways")
    with pytest.raises(ValueError, match="mtcnn"):
        fer_engine.FER(mtcnn=True)


def test_gil_is_released_while_the_model_runs():
    model = fer_engine.load()
    faces = np.random.default_rng(0).integers(0, 256, (128, 48, 48), dtype=np.uint8)
    model.predict(faces[:2])  # warm up
    count, running = [0], [True]

    def spin():
        while running[0]:
            count[0] += 1

    thread = threading.Thread(target=spin)
    thread.start()
    time.sleep(0.05)
    before = count[0]
    start = time.perf_counter()
    model.predict(faces)
    seconds = time.perf_counter() - start
    during = count[0] - before
    running[0] = False
    thread.join()
    # With the GIL held for the whole call the other thread could not count at all.
    assert seconds > 0.05 and during > 1000, (seconds, during)


def test_works_without_numpy_through_the_buffer_protocol():
    """pyenv's python3 has no numpy: buffers in, nested lists out."""
    python = shutil.which("python3")
    if not python or subprocess.run([python, "-c", "import numpy"], capture_output=True).returncode == 0:
        pytest.skip("SKIPPED: no python3 without numpy on PATH to run this in")
    code = ("import fer_engine\n"
            "face = memoryview(bytes(range(48)) * 48).cast('B', (48, 48))\n"
            "p = fer_engine.load().predict([face])\n"
            "assert isinstance(p, list) and len(p) == 1 and len(p[0]) == 7, p\n"
            "assert abs(sum(p[0]) - 1) < 1e-5\n"
            "print('ok')\n")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(fer_engine.__file__))
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
