"""i-CLEVR multi-label data (lab 5): its file format, and a synthetic stand-in written in that format.

The format: a folder with `objects.json` (24 object names -> index), `train.json` (image file -> list of 1-3 object
names) and the images (in `images/` or beside the JSON files); sampling conditions come as `test.json` /
`new_test.json` (lists of lists of names). The real images cannot be downloaded here; `make_synthetic_iclevr` draws
coloured shapes (cube: square, sphere: disc, cylinder: upright bar with a round top) on a grey floor, 1-3 per image,
named like i-CLEVR's objects, so that training, sampling and multi-label accuracy can be checked end to end.
"""

import json
import os

import numpy as np
from PIL import Image, ImageDraw

from ..pipelines.class_conditions import check_class_names

ICLEVR_SHAPES = ("cube", "sphere", "cylinder")
ICLEVR_COLOURS = {
    "gray": (128, 128, 128),
    "red": (200, 30, 30),
    "blue": (40, 60, 220),
    "green": (30, 170, 50),
    "brown": (130, 80, 30),
    "purple": (140, 40, 170),
    "cyan": (40, 200, 210),
    "yellow": (230, 210, 30),
}
# i-CLEVR's order: shapes in blocks of 8, colours in the order above ("gray cube": 0 ... "yellow cylinder": 23)
ICLEVR_OBJECTS = [f"{colour} {shape}" for shape in ICLEVR_SHAPES for colour in ICLEVR_COLOURS]
FLOOR_COLOUR = (205, 205, 200)


def read_iclevr_objects(folder: str) -> list[str]:
    """Object names in index order, from `folder/objects.json`."""
    path = os.path.join(folder, "objects.json")
    if not os.path.isfile(path):
        raise ValueError(f"{folder} has no objects.json; an i-CLEVR folder holds objects.json and train.json.")
    with open(path) as f:
        name_to_index = json.load(f)
    names = sorted(name_to_index, key=name_to_index.get)
    if [name_to_index[name] for name in names] != list(range(len(names))):
        raise ValueError(f"{path} must map its names to 0..{len(names) - 1}, each once.")
    check_class_names(names, path)
    return names


def read_iclevr_conditions(path: str, names: list[str]) -> list[list[int]]:
    """A test.json / new_test.json file (list of lists of object names) as lists of object ids."""
    with open(path) as f:
        conditions = json.load(f)
    index = {name: i for i, name in enumerate(names)}
    ids = []
    for position, condition in enumerate(conditions):
        unknown = [name for name in condition if name not in index]
        if unknown or not condition:
            raise ValueError(f"{path}, condition {position}: {condition!r} must be 1+ names from objects.json.")
        ids.append([index[name] for name in condition])
    return ids


def iclevr_dataset(folder: str):
    """The images and labels of an i-CLEVR folder as a `datasets.Dataset` (columns `image`, `labels`)."""
    import datasets

    names = read_iclevr_objects(folder)
    with open(os.path.join(folder, "train.json")) as f:
        labels_by_file = json.load(f)
    image_dir = os.path.join(folder, "images") if os.path.isdir(os.path.join(folder, "images")) else folder
    paths = [os.path.join(image_dir, file) for file in labels_by_file]
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise ValueError(f"{len(missing)} image(s) named in train.json are missing, e.g. {missing[0]}.")
    label_lists = [read_label_names(file, names, labels_by_file[file]) for file in labels_by_file]
    features = datasets.Features(
        {"image": datasets.Image(), "labels": datasets.Sequence(datasets.ClassLabel(names=names))}
    )
    return datasets.Dataset.from_dict({"image": paths, "labels": label_lists}, features=features)


def read_label_names(file: str, names: list[str], label_names: list[str]) -> list[int]:
    unknown = [name for name in label_names if name not in names]
    if unknown or not label_names:
        raise ValueError(f"train.json entry {file!r}: {label_names!r} must be 1+ names from objects.json.")
    return [names.index(name) for name in label_names]


def draw_scene(objects: list[str], resolution: int, rng: np.random.Generator) -> Image.Image:
    """Shapes at random, non-overlapping places on the floor colour."""
    image = Image.new("RGB", (resolution, resolution), FLOOR_COLOUR)
    draw = ImageDraw.Draw(image)
    size = resolution // 4
    taken = []
    for name in objects:
        colour, shape = name.split(" ")
        for _ in range(100):
            x, y = rng.integers(1, resolution - size - 1, size=2)
            if all(abs(x - ox) >= size + 1 or abs(y - oy) >= size + 1 for ox, oy in taken):
                break
        taken.append((x, y))
        fill = ICLEVR_COLOURS[colour]
        if shape == "cube":
            draw.rectangle([x, y, x + size - 1, y + size - 1], fill=fill)
        elif shape == "sphere":
            draw.ellipse([x, y, x + size - 1, y + size - 1], fill=fill)
        else:  # cylinder: a bar half as wide, with a round top
            left = x + size // 4
            draw.rectangle([left, y + size // 4, left + size // 2 - 1, y + size - 1], fill=fill)
            draw.ellipse([left, y, left + size // 2 - 1, y + size // 2 - 1], fill=fill)
    return image


def random_condition(rng: np.random.Generator) -> list[str]:
    """1-3 distinct objects, each count equally likely, as in i-CLEVR's train.json."""
    count = int(rng.integers(1, 4))
    return [ICLEVR_OBJECTS[i] for i in rng.choice(len(ICLEVR_OBJECTS), size=count, replace=False)]


def make_synthetic_iclevr(folder: str, num_images: int, resolution: int = 64, num_test: int = 32, seed: int = 0):
    """
    Write a synthetic i-CLEVR folder: `objects.json` (i-CLEVR's 24 names and indices), `images/NNNNNN.png`,
    `train.json` (file -> names) and `test.json` (`num_test` conditions drawn the same way).
    """
    if num_images < 1 or resolution < 16:
        raise ValueError(f"num_images must be >= 1 and resolution >= 16, got {num_images} and {resolution}.")
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    with open(os.path.join(folder, "objects.json"), "w") as f:
        json.dump({name: index for index, name in enumerate(ICLEVR_OBJECTS)}, f)
    train = {}
    for index in range(num_images):
        objects = random_condition(rng)
        file = f"synthetic_{index:06d}.png"
        draw_scene(objects, resolution, rng).save(os.path.join(folder, "images", file))
        train[file] = objects
    with open(os.path.join(folder, "train.json"), "w") as f:
        json.dump(train, f)
    with open(os.path.join(folder, "test.json"), "w") as f:
        json.dump([random_condition(rng) for _ in range(num_test)], f)
    return folder
