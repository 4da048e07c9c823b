"""Where a name points (a local path or a Hub id) and what a folder holds, decided before the Hub is asked."""

import json

import pytest

from ddpm_hf.hub import check_dataset_source, check_pipeline_source, local_dataset_splits, looks_local

ACCEPTED = ("DDPMCFGPipeline", "DDPMPipeline")


@pytest.mark.parametrize(
    "path, local",
    [
        ("owner/name", False),  # a Hub id
        ("gpt2", False),  # a Hub id without an owner
        ("./name", True),
        ("../name", True),
        ("/abs/name", True),
        ("~/name", True),
        (".", True),
        ("a/b/c", True),  # a Hub id has one slash
        (".hidden/name", True),  # no Hub id starts with a dot
        ("runs/missing", True),  # runs/ exists here: a folder under it, not the Hub repository runs/missing
    ],
)
def test_looks_local(tmp_path, monkeypatch, path, local):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert looks_local(path) is local


def test_what_a_pipeline_folder_holds_is_named(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    (tmp_path / "twod").mkdir()
    (tmp_path / "twod" / "model_index.json").write_text(
        json.dumps({"_class_name": ["pipeline_ddpm_2d", "DDPM2DPipeline"]})
    )
    (tmp_path / "ddim").mkdir()
    (tmp_path / "ddim" / "model_index.json").write_text(json.dumps({"_class_name": "DDIMPipeline"}))
    cases = {
        "run": r"--pipeline '.*run' is a folder without model_index.json, .*whose pipeline is not saved yet",
        "unet": r"it holds a single UNet2DModel \(config.json\): give the pipeline folder around it",
        "twod": r"is a DDPM2DPipeline, a 2D point model \(train_2d.py\); evaluate.py scores image models",
        "ddim": r"holds a DDIMPipeline \(model_index.json\); evaluate.py scores \['DDPMCFGPipeline', 'DDPMPipeline'\]",
        "missing": r"the folder does not exist. \(It reads as a local path, so the Hub is not asked",
    }
    for name, message in cases.items():
        with pytest.raises(ValueError, match=message):
            check_pipeline_source("--pipeline", str(tmp_path / name), ACCEPTED, "evaluate.py scores")
    (tmp_path / "ddpm").mkdir()
    (tmp_path / "ddpm" / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))
    check_pipeline_source("--pipeline", str(tmp_path / "ddpm"), ACCEPTED, "evaluate.py scores")
    check_pipeline_source("--pipeline", "owner/name", ACCEPTED, "evaluate.py scores")  # a Hub id: asked later


def test_the_splits_of_local_datasets(tmp_path):
    (tmp_path / "iclevr").mkdir()
    for name in ("objects.json", "train.json"):
        (tmp_path / "iclevr" / name).write_text("{}")
    (tmp_path / "folder" / "validation").mkdir(parents=True)
    assert local_dataset_splits("digits") == ["train"] and local_dataset_splits("faces.npz") == ["train"]
    assert local_dataset_splits(str(tmp_path / "iclevr")) == ["train"]
    assert local_dataset_splits(str(tmp_path / "folder")) is None  # 🤗 datasets names the splits of a folder
    with pytest.raises(ValueError, match=r"--split 'test': .* has the split\(s\) \['train'\]"):
        check_dataset_source(str(tmp_path / "iclevr"), "test")
    with pytest.raises(ValueError, match=r"--dataset '\./faces' does not exist"):
        check_dataset_source("./faces", "train")
