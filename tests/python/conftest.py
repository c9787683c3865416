# Fixtures of the fer_engine tests: where the photos, the FER2013 images and the apps are. A test
# whose input is absent is skipped with a reason that says what to install (`pytest -rs` lists
# them; CTest runs it so), as the C++ tests print "SKIPPED: ...".
import json
import os
import pathlib
import subprocess

import pytest

SOURCE_DIR = pathlib.Path(os.environ.get("FER_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
BUILD_DIR = pathlib.Path(os.environ.get("FER_BUILD_DIR", SOURCE_DIR / "build"))
DATA_DIR = pathlib.Path(os.environ.get("FER_DATA", SOURCE_DIR.parent / "shared" / "fer2013"))
CHECKPOINT = SOURCE_DIR / "models" / "pretrained" / "fer_vgg_small.safetensors"

DOC = pathlib.Path("/usr/share/doc/opencv-doc")
LENA = DOC / "opencv4/html/faceDetection.png"   # one face, 512x512 colour PNG
FOUR = DOC / "opencv4/html/facereg.jpg"         # four faces
FISH = DOC / "examples/data/HappyFish.jpg"      # no face


def require(path, what):
    """The path, or a skip that names it and where it comes from."""
    if not pathlib.Path(path).exists():
        pytest.skip(f"SKIPPED: {path} is absent ({what})")
    return pathlib.Path(path)


@pytest.fixture
def photo():
    return require(LENA, "Debian package opencv-doc")


@pytest.fixture
def fer_data():
    return require(DATA_DIR / "val", "FER2013 images: set FER_DATA or put them in ../shared/fer2013").parent


def app(name):
    return require(BUILD_DIR / name, f"the app {name} is not built in {BUILD_DIR}")


def fer_predict(*args):
    """fer_predict's JSON lines, one list of faces per image, in order."""
    out = subprocess.run([str(app("fer_predict")), "--no-progress", "--checkpoint", str(CHECKPOINT), *map(str, args)],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line)["faces"] for line in out.splitlines() if line.strip()]
