"""Where a name points and what it holds, decided before anything is downloaded: the one rule for "a local path or a
Hub id?" (`looks_local`), the checks that name what a folder is when it is not what a script takes (a 2D run, another
pipeline, a checkpoint, a run still training, a single model), and the splits a local dataset offers."""

import json
import os

from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..data import BUILTIN_DATASETS


def looks_local(path: str) -> bool:
    """
    Whether `path` means a local file or folder rather than a Hub id: it starts with ./, ../, / or ~, its parent
    folder exists, or it holds a path separator and is no valid Hub id ("owner/name"). Such a path never reaches the
    Hub, so that a mistyped folder is named as missing instead of asked for on the Hub.
    """
    if path in (".", "..") or path.startswith(("./", "../", "~", os.sep, "." + os.sep)) or os.path.isabs(path):
        return True
    parent = os.path.dirname(path)
    if parent and os.path.isdir(parent):
        return True
    if os.sep in path or "/" in path:
        try:
            validate_repo_id(path)
        except HFValidationError:
            return True
    return False


def read_json_file(path: str, flag: str) -> dict:
    """A JSON object from `path`, or a ValueError naming the flag and the file."""
    try:
        with open(path) as f:
            loaded = json.load(f)
    except (OSError, ValueError) as error:
        raise ValueError(f"{flag}: {path} cannot be read as JSON ({error}).") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{flag}: {path} holds {type(loaded).__name__}, not a JSON object.")
    return loaded


def pipeline_class_name(model_index: dict) -> str | None:
    """The pipeline class a model_index.json names (ddpm-hf folders name [source module, class])."""
    name = model_index.get("_class_name")
    return name[-1] if isinstance(name, (list, tuple)) and name else name


def check_pipeline_class(flag: str, path: str, model_index: dict, accepted: tuple[str, ...], what: str) -> None:
    """
    Refuse a pipeline of a class not in `accepted`, saying what it is: a 2D model, or another kind of pipeline.

    Args:
        flag (`str`): The flag that gave it, for the message (e.g. "--pipeline").
        path (`str`): The folder or Hub id.
        model_index (`dict`): Its model_index.json.
        accepted (`tuple[str, ...]`): The pipeline classes the caller takes.
        what (`str`): What the caller does with them, in words (e.g. "evaluate.py scores").
    """
    flag = f"{flag} {path!r}"
    class_name = pipeline_class_name(model_index)
    if class_name == "DDPM2DPipeline" and class_name not in accepted:
        raise ValueError(
            f"{flag} is a DDPM2DPipeline, a 2D point model (train_2d.py); {what} image models. A 2D run is scored by "
            "the Chamfer distance in its metrics.json."
        )
    if class_name not in accepted:
        raise ValueError(
            f"{flag} holds a {class_name} (model_index.json); {what} {list(accepted)} folders: image models from "
            "train_image.py, or diffusers' DDPMPipeline."
        )


def what_the_folder_holds(path: str) -> str:
    """For a folder without model_index.json: what it is, when it is something a user may take for a pipeline."""
    name = os.path.basename(os.path.normpath(path))
    if name.startswith("checkpoint-") and os.path.isfile(os.path.join(path, "model.safetensors")):
        return (
            "; it is a training checkpoint: make a pipeline of it with python train_scripts/export_checkpoint.py "
            "--run_dir RUN --checkpoint NAME --output_dir NEW"
        )
    if os.path.isdir(os.path.join(path, "checkpoints")):
        return (
            "; it is a run folder whose pipeline is not saved yet (the run is training, or stopped): export a "
            "checkpoint with python train_scripts/export_checkpoint.py --run_dir RUN --output_dir NEW"
        )
    if os.path.isfile(os.path.join(path, "config.json")):
        class_name = read_json_file(os.path.join(path, "config.json"), "--pipeline").get("_class_name")
        return f"; it holds a single {class_name} (config.json): give the pipeline folder around it"
    return ""


def check_pipeline_source(flag: str, path: str, accepted: tuple[str, ...], what: str) -> None:
    """
    `path` must be a saved pipeline folder of a class in `accepted`, or a Hub id; a local-looking path that does not
    exist is refused without asking the Hub. Arguments as in `check_pipeline_class`.
    """
    if os.path.isdir(path):
        index_path = os.path.join(path, "model_index.json")
        if not os.path.isfile(index_path):
            raise ValueError(
                f"{flag} {path!r} is a folder without model_index.json, not a saved pipeline"
                f"{what_the_folder_holds(path)}."
            )
        check_pipeline_class(flag, path, read_json_file(index_path, flag), accepted, what)
    elif os.path.exists(path):
        raise ValueError(f"{flag} {path!r} is a file; give a saved pipeline folder or a Hub id (owner/name).")
    elif looks_local(path):
        raise ValueError(
            f"{flag} {path!r}: the folder does not exist. (It reads as a local path, so the Hub is not asked; a Hub "
            "id has the form owner/name.)"
        )


def check_classifier_folder(flag: str, path: str) -> None:
    """`path` (given as `flag`) must be a classifier folder written by train_classifier.py (an ImageClassifier); a
    pipeline folder or another model is refused, saying what it is."""
    flag_name, flag = flag, f"{flag} {path!r}"
    if os.path.isfile(os.path.join(path, "model_index.json")):
        raise ValueError(
            f"{flag} is a pipeline folder (it holds model_index.json); give a classifier saved by "
            "train_classifier.py (an ImageClassifier), or --inception."
        )
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        raise ValueError(f"{flag} is not a saved classifier (no config.json).")
    class_name = read_json_file(config_path, flag_name).get("_class_name")
    if class_name != "ImageClassifier":
        raise ValueError(
            f"{flag} holds a {class_name} (config.json), not a classifier; give a folder saved by "
            "train_classifier.py (an ImageClassifier), or --inception."
        )


def local_dataset_splits(dataset: str) -> list[str] | None:
    """
    The splits a local dataset source offers, as `ddpm_hf.data.load_image_dataset` reads it; None where 🤗 datasets
    resolves the split and names the splits there are when it is unknown (Hub ids, image folders, saved DatasetDicts).
    """
    if dataset in BUILTIN_DATASETS or dataset.endswith(".npz"):
        return ["train"]
    if not os.path.isdir(dataset):
        return None
    if os.path.isfile(os.path.join(dataset, "dataset_dict.json")):
        return None
    if os.path.isfile(os.path.join(dataset, "objects.json")) and os.path.isfile(os.path.join(dataset, "train.json")):
        return ["train"]  # i-CLEVR: the images of train.json; test.json holds conditions only
    if os.path.isfile(os.path.join(dataset, "dataset_info.json")):
        return ["train"]  # one saved Dataset
    for _, _, names in os.walk(dataset):
        if any(name.endswith((".parquet", ".arrow")) for name in names):
            return ["train"]  # every parquet or arrow file loads as one split
    return None


def check_dataset_source(dataset: str, split: str) -> None:
    """Refuse a missing local dataset (before the Hub is asked) and a split the source does not have."""
    if dataset not in BUILTIN_DATASETS and not os.path.exists(dataset) and looks_local(dataset):
        raise ValueError(f"--dataset {dataset!r} does not exist (a local path, so the Hub is not asked).")
    splits = local_dataset_splits(dataset)
    if splits is not None and split not in splits:
        raise ValueError(f"--split {split!r}: {dataset!r} has the split(s) {splits}.")
