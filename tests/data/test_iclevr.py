"""i-CLEVR's file format: the real label files in ../shared/data/iclevr, and the synthetic stand-in in that format."""

import json
from pathlib import Path

import numpy as np
import pytest

from ddpm_hf.data import (
    ICLEVR_OBJECTS,
    load_image_dataset,
    load_image_tensors,
    make_synthetic_iclevr,
    read_iclevr_conditions,
    read_iclevr_objects,
)
from ddpm_hf.data.iclevr import FLOOR_COLOUR, ICLEVR_COLOURS, draw_scene

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "iclevr"
needs_real_files = pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/iclevr is not here")


@needs_real_files
def test_object_names_and_order_are_iclevrs():
    assert read_iclevr_objects(str(REAL)) == ICLEVR_OBJECTS
    assert json.loads((REAL / "objects.json").read_text()) == {name: i for i, name in enumerate(ICLEVR_OBJECTS)}


@needs_real_files
@pytest.mark.parametrize("file", ["test.json", "new_test.json"])
def test_real_test_conditions_read_as_ids(file):
    conditions = read_iclevr_conditions(str(REAL / file), ICLEVR_OBJECTS)
    raw = json.loads((REAL / file).read_text())
    assert len(conditions) == 32 and all(1 <= len(c) <= 3 for c in conditions)
    assert [[ICLEVR_OBJECTS[i] for i in c] for c in conditions] == raw


def test_synthetic_folder_has_the_real_format_and_loads(tmp_path):
    folder = make_synthetic_iclevr(str(tmp_path / "iclevr"), num_images=30, resolution=32, num_test=5)
    train = json.loads((tmp_path / "iclevr" / "train.json").read_text())
    assert len(train) == 30 and all(1 <= len(names) <= 3 and len(set(names)) == len(names) for names in train.values())
    assert all(name in ICLEVR_OBJECTS for names in train.values() for name in names)
    assert len(read_iclevr_conditions(str(tmp_path / "iclevr" / "test.json"), ICLEVR_OBJECTS)) == 5
    dataset = load_image_dataset(train_data_dir=folder)
    assert len(dataset) == 30 and dataset.features["labels"].feature.names == ICLEVR_OBJECTS
    first_file = next(iter(train))
    assert [ICLEVR_OBJECTS[i] for i in dataset[0]["labels"]] == train[first_file]
    images, labels, names = load_image_tensors(train_data_dir=folder, resolution=32)
    assert images.shape == (30, 3, 32, 32) and labels.shape == (30, 24) and names == ICLEVR_OBJECTS
    assert labels.sum(dim=1).tolist() == [len(names) for names in train.values()]


def test_a_scene_shows_each_object_in_its_colour():
    rng = np.random.default_rng(0)
    scene = np.asarray(draw_scene(["red sphere", "blue cube", "yellow cylinder"], 64, rng))
    for colour in ("red", "blue", "yellow"):
        assert (scene == ICLEVR_COLOURS[colour]).all(axis=2).sum() > 20
    assert (scene == ICLEVR_COLOURS["green"]).all(axis=2).sum() == 0
    assert (scene == FLOOR_COLOUR).all(axis=2).mean() > 0.5
    cube = np.asarray(draw_scene(["gray cube"], 64, np.random.default_rng(1)))
    sphere = np.asarray(draw_scene(["gray sphere"], 64, np.random.default_rng(1)))
    # same place and colour: the square covers more pixels than the disc inside it
    assert (cube == ICLEVR_COLOURS["gray"]).all(axis=2).sum() > (sphere == ICLEVR_COLOURS["gray"]).all(axis=2).sum()


def test_bad_files_are_named(tmp_path):
    folder = make_synthetic_iclevr(str(tmp_path / "iclevr"), num_images=3, resolution=16)
    first = sorted((tmp_path / "iclevr" / "images").iterdir())[0]
    first.unlink()
    with pytest.raises(ValueError, match=rf"1 image\(s\) named in train.json are missing, e.g. .*{first.name}"):
        load_image_dataset(train_data_dir=folder)
    (tmp_path / "bad.json").write_text('[["red cube", "pink cube"]]')
    with pytest.raises(ValueError, match="condition 0.*pink cube"):
        read_iclevr_conditions(str(tmp_path / "bad.json"), ICLEVR_OBJECTS)


def test_an_empty_object_name_is_refused_by_name(tmp_path):
    folder = make_synthetic_iclevr(str(tmp_path / "iclevr"), num_images=2, resolution=16)
    objects = {name: index for index, name in enumerate(ICLEVR_OBJECTS)}
    objects[""] = objects.pop("gray cube")  # id 0 loses its name
    (tmp_path / "iclevr" / "objects.json").write_text(json.dumps(objects))
    with pytest.raises(ValueError, match=r"objects.json: the name of class 0 is ''"):
        load_image_dataset(train_data_dir=folder)
