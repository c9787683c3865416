# fer_engine.train() and evaluate(): fer_train's and fer_eval's options as keywords, a few steps of
# training that write a checkpoint and report progress, a stop from the callback that saves the
# run, and an evaluation whose accuracy is fer_eval's. They need FER2013 (../shared/fer2013 or
# $FER_DATA) and skip visibly without it.
import json
import os
import subprocess

import pytest

import fer_engine
from conftest import CHECKPOINT, app

# A few steps on a little of the data: the loaders' threads and the checks, not the learning.
QUICK = dict(model="fer_vgg_small", epochs=1, max_steps=3, batch_size=16, per_class_cap=20,
             val_per_class_cap=4, workers=1, seed=3)


def test_options_are_the_apps_flags():
    options = fer_engine.train_options()
    assert options["max_steps"] == "0" and options["epochs"] == "40" and "freeze_backbone" in options
    assert fer_engine.evaluate_options()["checkpoint"] == fer_engine.default_checkpoint
    with pytest.raises(TypeError, match="'epoch'.*did you mean 'epochs'"):
        fer_engine.train(epoch=1)
    with pytest.raises(ValueError, match="--epochs"):
        fer_engine.train(epochs="many")
    with pytest.raises(ValueError, match="--batch-size"):
        fer_engine.evaluate(batch_size="lots")
    with pytest.raises(TypeError, match="progress"):
        fer_engine.train(progress="yes")


def test_missing_data_is_an_engine_error(tmp_path):
    with pytest.raises(fer_engine.Error, match="nowhere"):
        fer_engine.train(data=str(tmp_path / "nowhere"), out=str(tmp_path / "run"), **QUICK)


def test_train_a_few_steps(tmp_path, fer_data):
    events = []
    summary = fer_engine.train(progress=events.append, data=fer_data, out=tmp_path / "run", **QUICK)
    steps = [e for e in events if e["event"] == "step"]
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["step"] for e in steps] == [1, 2, 3] and all(e["steps"] == 3 for e in steps)
    assert all(e["loss"] > 0 and 0 <= e["acc"] <= 1 for e in steps)
    assert len(epochs) == 1 and "val_acc" in epochs[0]
    assert summary["exit_code"] == 0 and not summary["interrupted"]
    assert len(summary["history"]) == 1 and summary["history"][0]["val_acc"] == epochs[0]["val_acc"]
    assert summary["best_val_acc"] == epochs[0]["val_acc"] and summary["best_epoch"] == 1
    assert os.path.exists(summary["best_path"]) and os.path.exists(summary["last_path"])
    faces = memoryview(bytes(2 * 48 * 48)).cast("B", (2, 48, 48))  # the checkpoint classifies faces
    assert len(fer_engine.load(summary["best_path"]).predict(faces)) == 2


def test_an_exception_in_the_callback_stops_and_saves(tmp_path, fer_data):
    def stop_at_two(event):
        if event["event"] == "step" and event["step"] == 2:
            raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fer_engine.train(progress=stop_at_two, data=fer_data, out=out, **QUICK)
    assert (out / "last.safetensors").exists()  # the exact position, for resume=True
    events = []
    summary = fer_engine.train(progress=events.append, data=fer_data, out=out, resume=True, **QUICK)
    assert [e["step"] for e in events if e["event"] == "step"] == [3]
    assert summary["exit_code"] == 0 and len(summary["history"]) == 1


def test_evaluate_equals_fer_eval(tmp_path, fer_data):
    # A small split of 3 faces per class, linked from val/.
    root = tmp_path / "data"
    for class_dir in sorted((fer_data / "val").iterdir()):
        (root / "val" / class_dir.name).mkdir(parents=True)
        for face in sorted(class_dir.iterdir())[:3]:
            (root / "val" / class_dir.name / face.name).symlink_to(face)
    subprocess.run([str(app("fer_eval")), "--checkpoint", str(CHECKPOINT), "--data", str(root),
                    "--out", str(tmp_path / "app")], check=True, capture_output=True)
    expected = json.loads((tmp_path / "app" / "report.json").read_text())
    batches = []
    report = fer_engine.evaluate(progress=batches.append, checkpoint=CHECKPOINT, data=root, batch_size=8)
    assert report["accuracy"] == expected["accuracy"]
    assert report["loss"] == pytest.approx(expected["loss"], abs=1e-6)  # other batches: float sums
    assert report["calibration"]["ece"] == pytest.approx(expected["calibration"]["ece"], abs=1e-6)
    assert [b["done"] for b in batches] == [8, 16, 21] and batches[-1]["total"] == 21
