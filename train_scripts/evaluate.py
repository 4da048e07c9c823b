"""Evaluate saved DDPMCFGPipelines against a dataset: FID, KID, IS and conditional accuracy, over guidance scales,
samplers and runs; conditional and unconditional models alike.

    python train_scripts/evaluate.py --pipeline outputs/digits --dataset digits \
        --feature_network outputs/digits_classifier --output_dir outputs/digits_eval
    python train_scripts/evaluate.py --pipeline outputs/afhq_64_* --dataset huggan/AFHQv2 --split validation \
        --feature_network outputs/afhq_classifier --guidance_scales 3 --sampler ddpm ddim:50 dpm_solver++:20 ...
    python train_scripts/evaluate.py --pipeline outputs/anime_faces --dataset path/to/faces --inception \
        --output_dir outputs/anime_faces_eval

The dataset (split --split) is split at random into two disjoint halves A and B. A is the reference; B, compared with
A, gives the real-vs-real floor of every metric, printed beside it. For every guidance scale, as many images as B
holds are generated (with B's labels for a conditional model; unconditional models are sampled once) and scored
against A. Feature network, for FID, KID and IS: a classifier trained by train_classifier.py (--feature_network;
offline), or the standard Inception-v3 with --inception (torch-fidelity; FID/KID on its pool features, IS on its
ImageNet logits). Conditional accuracy needs a conditional model, labelled data and a classifier (--feature_network,
which with --inception judges accuracy only). Several --pipeline folders (e.g. lab 2's schedule x prediction-type
runs) and several --sampler NAME:STEPS give one table. Writes OUT/eval.json, OUT/report.md (the table),
OUT/guidance_sweep.png (FID against accuracy, a line per run and sampler) and one grid per row (one row of images
per class). Reference features are cached (--cache_dir). Pipelines, data, classifier and Inception weights are all
loaded and checked against each other before anything is sampled or written.
"""

import argparse
import json
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from diffusers import DiffusionPipeline  # noqa: E402
from huggingface_hub.utils import HFValidationError, validate_repo_id  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from ddpm_hf import DDPMCFGPipeline  # noqa: E402
from ddpm_hf.data import (  # noqa: E402
    BUILTIN_DATASETS,
    RESIZE_MODES,
    load_image_tensors,
    multi_hot,
    read_iclevr_conditions,
)
from ddpm_hf.metrics import (  # noqa: E402
    cached_tensors,
    extract_features,
    file_fingerprint,
    frechet_distance,
    inception_feature_network,
    inception_score,
    kernel_distance,
    multi_label_accuracy,
    multi_label_accuracy_by_count,
    single_label_accuracy,
)
from ddpm_hf.models import ImageClassifier  # noqa: E402
from ddpm_hf.schedulers import SAMPLERS, default_num_steps, make_sampler  # noqa: E402
from ddpm_hf.viz import image_grid, square_grid, tensor_to_pil  # noqa: E402

COURSE_OMEGAS = (0, 0.5, 1, 2, 3, 5)
# What --pipeline takes: ddpm-hf's image pipeline, and diffusers' own unconditional one (which it loads unchanged)
PIPELINE_CLASSES = ("DDPMCFGPipeline", "DDPMPipeline")
# each half needs two images: FID's covariance (and KID's unbiased estimate) are undefined for one
MIN_DATASET_IMAGES = 4


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="FID / KID / IS / accuracy of a saved DDPM pipeline.")
    parser.add_argument(
        "--pipeline",
        type=str,
        nargs="+",
        required=True,
        help="Saved DDPMCFGPipeline folder(s) or Hub id(s); several give one table (e.g. schedule x prediction runs).",
    )
    parser.add_argument("--dataset", type=str, required=True, help="'digits', a .npz, a local folder or a Hub id.")
    parser.add_argument(
        "--resize_mode",
        type=str,
        default="crop",
        help="'crop' (shorter side, centre crop) or 'stretch' (whole image to the square, e.g. i-CLEVR's 320x240).",
    )
    parser.add_argument(
        "--split",
        type=str,
        default="train",
        help="Split of the dataset to compare with (e.g. 'validation' of a Hub dataset or of an image folder with "
        "train/ and validation/ sub-folders); 'digits', .npz files and i-CLEVR folders have only 'train'.",
    )
    parser.add_argument(
        "--feature_network",
        type=str,
        default=None,
        help="A classifier from train_classifier.py: FID/KID features, IS and conditional accuracy (with "
        "--inception: accuracy only). Needed unless --inception is given.",
    )
    parser.add_argument(
        "--inception",
        action="store_true",
        help="FID/KID on the standard Inception-v3 pool features and IS on its logits (torch-fidelity), instead of "
        "--feature_network's.",
    )
    parser.add_argument(
        "--inception_weights",
        type=str,
        default=None,
        help="A local copy of torch-fidelity's weights-inception-2015-12-05-6726825d.pth (offline use); default: "
        "torch.hub's cache ($TORCH_HOME/hub/checkpoints), downloaded there on first use.",
    )
    parser.add_argument(
        "--guidance_scales",
        type=float,
        nargs="+",
        default=[1 + omega for omega in COURSE_OMEGAS],
        help="Guidance scales s (omega = s - 1) of conditional models; default: omega 0, 0.5, 1, 2, 3, 5.",
    )
    parser.add_argument(
        "--sampler",
        type=str,
        nargs="+",
        default=["ddpm"],
        help=f"Sampler(s), each NAME or NAME:STEPS, NAME one of {list(SAMPLERS)} (e.g. ddpm:400 ddim:50 "
        "dpm_solver++:20); several give the sampler sweep.",
    )
    parser.add_argument(
        "--num_inference_steps", type=int, default=None, help="Steps of samplers given without :STEPS; default usual."
    )
    parser.add_argument(
        "--conditions",
        type=str,
        default=None,
        help="Multi-label models: a test.json-style file (a list of lists of label names, e.g. i-CLEVR's test.json "
        "or new_test.json); generate for these conditions, in turn, instead of B's labels.",
    )
    parser.add_argument("--num_samples", type=int, default=None, help="Generated images per scale; default |B|.")
    parser.add_argument("--batch_size", type=int, default=500, help="Images per pipeline call.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the split and of the samples.")
    parser.add_argument("--cache_dir", type=str, default=None, help="Reference-feature cache (default ~/.cache).")
    parser.add_argument(
        "--device", type=str, default=None, help="Where sampling and features run; default cuda when available."
    )
    parser.add_argument(
        "--compiled_sampling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Sample the 'ddpm' sampler through DDPMCFGPipeline.enable_compiled_sampling (the same images up to "
        "float rounding, after a compile per batch size); default: on CUDA. Other samplers keep the plain loop.",
    )
    parser.add_argument(
        "--save_samples",
        action="store_true",
        help="Also write every generated image to OUTPUT_DIR/samples.npz (uint8 arrays images, labels and omega, one "
        "entry per image, and row: its row of eval.json's results), so that others can score them again.",
    )
    parser.add_argument("--output_dir", type=str, required=True, help="Where eval.json and the report go.")
    args = parser.parse_args(argv)
    if any(scale < 0 for scale in args.guidance_scales):
        raise ValueError(f"--guidance_scales must be >= 0, got {args.guidance_scales}.")
    if args.num_samples is not None and args.num_samples < 2:
        raise ValueError(f"--num_samples must be >= 2, got {args.num_samples}.")
    if args.batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1 (images per pipeline call), got {args.batch_size}.")
    if args.num_inference_steps is not None and args.num_inference_steps < 1:
        raise ValueError(f"--num_inference_steps must be >= 1, got {args.num_inference_steps}.")
    args.samplers = [parse_sampler(value, args.num_inference_steps) for value in args.sampler]
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.compiled_sampling is None:
        args.compiled_sampling = torch.device(args.device).type == "cuda"
    if args.resize_mode not in RESIZE_MODES:
        raise ValueError(f"Unknown --resize_mode {args.resize_mode!r}; choose one of {list(RESIZE_MODES)}.")
    if args.conditions is not None and not os.path.isfile(args.conditions):
        raise ValueError(f"--conditions {args.conditions!r} is not a file.")
    if args.feature_network is None and not args.inception:
        raise ValueError(
            "Give --feature_network PATH (a classifier from train_classifier.py; offline), --inception (the standard "
            "Inception-v3 through torch-fidelity), or both."
        )
    if args.feature_network is not None:
        check_feature_network(args.feature_network)
    if args.inception_weights is not None:
        if not args.inception:
            raise ValueError("--inception_weights is the Inception-v3 weights file of --inception; add --inception.")
        if not os.path.isfile(args.inception_weights):
            raise ValueError(f"--inception_weights {args.inception_weights!r} is not a file.")
    # a quoted ~ reaches us unexpanded; expanded, it is the folder the user means
    args.pipeline = [os.path.expanduser(path) if path.startswith("~") else path for path in args.pipeline]
    if args.dataset.startswith("~"):
        args.dataset = os.path.expanduser(args.dataset)
    for path in args.pipeline:
        check_pipeline_source(path)
    check_dataset_source(args.dataset, args.split)
    return args


def parse_sampler(value: str, default_steps: int | None):
    """ "ddim:50" -> ("ddim", 50); "ddim" -> ("ddim", default_steps or None for the sampler's usual)."""
    name, _, steps = value.partition(":")
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r} in --sampler {value!r}; choose from {list(SAMPLERS)}.")
    if steps and not (steps.isdigit() and int(steps) >= 1):
        raise ValueError(f"--sampler {value!r}: steps must be a whole number >= 1.")
    return name, int(steps) if steps else default_steps


def looks_local(path: str) -> bool:
    """
    Whether `path` means a local file or folder rather than a Hub id: it starts with ./, ../, / or ~, its parent
    folder exists, or it holds a path separator and is no valid Hub id ("owner/name").
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


def check_feature_network(path: str) -> None:
    """--feature_network must be a classifier folder written by train_classifier.py (an ImageClassifier)."""
    flag = f"--feature_network {path!r}"
    if os.path.isfile(os.path.join(path, "model_index.json")):
        raise ValueError(
            f"{flag} is a pipeline folder (it holds model_index.json); give a classifier saved by "
            "train_classifier.py (an ImageClassifier), or --inception."
        )
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        raise ValueError(f"{flag} is not a saved classifier (no config.json).")
    class_name = read_json_file(config_path, "--feature_network").get("_class_name")
    if class_name != "ImageClassifier":
        raise ValueError(
            f"{flag} holds a {class_name} (config.json), not a classifier; give a folder saved by "
            "train_classifier.py (an ImageClassifier), or --inception."
        )


def pipeline_class_name(model_index: dict) -> str | None:
    """The pipeline class a model_index.json names (ddpm-hf folders name [source module, class])."""
    name = model_index.get("_class_name")
    return name[-1] if isinstance(name, (list, tuple)) and name else name


def check_pipeline_class(path: str, model_index: dict) -> None:
    """Refuse a pipeline evaluate.py cannot score, saying what it is: a 2D model, or another kind of pipeline."""
    class_name = pipeline_class_name(model_index)
    if class_name == "DDPM2DPipeline":
        raise ValueError(
            f"--pipeline {path!r} is a DDPM2DPipeline, a 2D point model (train_2d.py); evaluate.py scores image "
            "models. A 2D run is scored by the Chamfer distance in its metrics.json."
        )
    if class_name not in PIPELINE_CLASSES:
        raise ValueError(
            f"--pipeline {path!r} holds a {class_name} (model_index.json); evaluate.py scores "
            f"{list(PIPELINE_CLASSES)} folders: image models from train_image.py, or diffusers' DDPMPipeline."
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


def check_pipeline_source(path: str) -> None:
    """A saved pipeline folder of a kind evaluate.py scores, or a Hub id; a local-looking path that does not exist
    never reaches the Hub."""
    if os.path.isdir(path):
        index_path = os.path.join(path, "model_index.json")
        if not os.path.isfile(index_path):
            raise ValueError(
                f"--pipeline {path!r} is a folder without model_index.json, not a saved pipeline"
                f"{what_the_folder_holds(path)}."
            )
        check_pipeline_class(path, read_json_file(index_path, "--pipeline"))
    elif os.path.exists(path):
        raise ValueError(f"--pipeline {path!r} is a file; give a saved pipeline folder or a Hub id (owner/name).")
    elif looks_local(path):
        raise ValueError(
            f"--pipeline {path!r}: the folder does not exist. (It reads as a local path, so the Hub is not asked; "
            "a Hub id has the form owner/name.)"
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


def short_list(names) -> str:
    """A list of class names for a message: all of them up to 10, else the first 10 and the count."""
    names = list(names)
    return str(names) if len(names) <= 10 else f"{names[:10]} ... ({len(names)} in all)"


def is_default_names(names) -> bool:
    """Whether class names are just the ids as strings (what data or a model without names gets)."""
    return list(names) == [str(index) for index in range(len(names))]


def check_classes(source: str, num_classes: int, multi_label: bool, names, labels, class_names, dataset: str):
    """Refuse a model or judge whose classes are not the data's (count, single/multi-label, names where both have
    real names): its class ids would mean other classes than the data's labels."""
    data_kind = "multi-label" if labels.ndim == 2 else "single-label"
    kind = "multi-label" if multi_label else "single-label"
    if kind != data_kind:
        raise ValueError(
            f"{source} is {kind} and the dataset {dataset!r} is {data_kind}; evaluate it on its own data."
        )
    if num_classes != len(class_names):
        raise ValueError(
            f"The dataset {dataset!r} has {len(class_names)} classes {short_list(class_names)} and {source} has "
            f"{num_classes}{'' if names is None else ' ' + short_list(names)}; give the data the model was trained on."
        )
    if names is not None and list(names) != list(class_names):
        if not (is_default_names(names) or is_default_names(class_names)):
            raise ValueError(
                f"The dataset {dataset!r} has the classes {short_list(class_names)} and {source} has "
                f"{short_list(names)}; the same ids would mean other classes."
            )


def check_data_matches(args, pipes, judge, images, labels, class_names):
    """Everything the evaluation compares must agree before anything is sampled: enough images for two halves, the
    pipelines' and the judge's channels and classes against the data's."""
    if args.conditions is not None and (labels is None or labels.ndim != 2):
        raise ValueError(f"--conditions is for multi-label data; {args.dataset!r} has one label per image or none.")
    if len(images) < MIN_DATASET_IMAGES:
        raise ValueError(
            f"The dataset {args.dataset!r} (split {args.split!r}) holds {len(images)} image(s); at least "
            f"{MIN_DATASET_IMAGES} are needed to split it into two halves of 2 or more (reference and floor)."
        )
    channels = images.shape[1]
    for path, pipe in pipes.items():
        if pipe.unet.config.in_channels != channels:
            raise ValueError(
                f"The dataset {args.dataset!r} has {channels}-channel images and the pipeline {path!r} makes "
                f"{pipe.unet.config.in_channels}-channel images; evaluate a model on data of its own kind."
            )
        if pipe.num_classes is not None and labels is not None:
            stored_names = list(pipe.id2label.values()) if pipe.config.get("id2label") else None
            check_classes(f"the pipeline {path!r}", pipe.num_classes, pipe.is_multi_label, stored_names, labels,
                          class_names, args.dataset)  # fmt: skip
    if judge is not None:
        if judge.config.in_channels != channels:
            raise ValueError(
                f"The dataset {args.dataset!r} has {channels}-channel images and the classifier "
                f"{args.feature_network!r} takes {judge.config.in_channels}-channel images."
            )
        if labels is not None:
            check_classes(f"the classifier {args.feature_network!r}", judge.config.num_labels,
                          judge.config.multi_label, judge.config.label_names, labels, class_names,
                          args.dataset)  # fmt: skip


def repeat_to(requested: torch.Tensor, count: int) -> torch.Tensor:
    """`requested` (class ids (N,) or multi-hot rows (N, K)) repeated in turn to `count` entries."""
    repeats = count // len(requested) + 1
    return requested.repeat(repeats, *[1] * (requested.ndim - 1))[:count]


def split_halves(count: int, seed: int):
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[: count // 2], order[count // 2 :]


def generate(pipe, labels, count, guidance_scale, num_steps, batch_size, seed, description=None):
    """`count` images in [0, 1] for the requested labels (unconditional when `labels` is None), with a progress bar
    named `description`."""
    generator = torch.Generator().manual_seed(seed)
    chunks = []
    with tqdm(total=count, desc=description or "sample", unit="img") as progress:
        for first in range(0, count, batch_size):
            chunk = None if labels is None else labels[first : first + batch_size]
            chunks.append(
                pipe(
                    class_labels=chunk,
                    batch_size=len(chunk) if chunk is not None else min(batch_size, count - first),
                    guidance_scale=guidance_scale,
                    num_inference_steps=num_steps,
                    generator=generator,
                    output_type="pt",
                ).images.cpu()  # fmt: skip
            )
            progress.update(len(chunks[-1]))
    return torch.cat(chunks)


def image_side(pipe, path: str) -> int:
    """The side of the square images a pipeline makes (its U-Net's sample_size: one side or [n, n]); the data is
    resized to squares, so other shapes are refused."""
    sample_size = pipe.unet.config.sample_size  # checked by the pipeline when it was built
    height, width = (sample_size, sample_size) if isinstance(sample_size, int) else sample_size
    if height != width:
        raise ValueError(
            f"--pipeline {path!r} makes {height}x{width} (height x width) images; evaluate.py compares square images "
            "with the data resized to squares."
        )
    return height


def load_pipelines(args) -> dict:
    pipes = {}
    for path in args.pipeline:
        if not os.path.isdir(path):  # a Hub id: its model_index.json says what it is before anything else is fetched
            try:
                model_index = DiffusionPipeline.load_config(path)
            except OSError:
                model_index = None  # no such repository, or no network: from_pretrained says which, as the Hub does
            if model_index is not None:
                check_pipeline_class(path, model_index)
        pipe = DDPMCFGPipeline.from_pretrained(path).to(args.device)
        pipe.set_progress_bar_config(disable=True)  # one bar per guidance scale instead of one per batch
        pipes[path] = pipe
    first = next(iter(pipes.values()))
    kind = (image_side(first, args.pipeline[0]), first.unet.config.in_channels)
    for path, pipe in pipes.items():
        if (image_side(pipe, path), pipe.unet.config.in_channels) != kind:
            raise ValueError(f"{path} makes other images than {args.pipeline[0]}; evaluate them separately.")
    return pipes


def main(args):
    # everything is loaded and checked against everything else before anything is sampled or written
    pipes = load_pipelines(args)
    resolution = image_side(next(iter(pipes.values())), args.pipeline[0])
    judge = None
    if args.feature_network is not None:
        judge = ImageClassifier.from_pretrained(args.feature_network).eval().to(args.device)
    if args.inception:
        feature_network = inception_feature_network(args.inception_weights).to(args.device)
        network_id = "inception-v3-compat 2048 logits_unbiased"
    else:
        feature_network = judge
        network_id = file_fingerprint(os.path.join(args.feature_network, "diffusion_pytorch_model.safetensors"))

    images, labels, class_names = load_image_tensors(
        args.dataset, resolution=resolution, split=args.split, resize_mode=args.resize_mode,
        progress=True,
    )  # fmt: skip
    check_data_matches(args, pipes, judge, images, labels, class_names)
    mode = "L" if images.shape[1] == 1 else "RGB"
    images = (images + 1) / 2  # [0, 1], as the pipeline returns them
    half_a, half_b = split_halves(len(images), args.seed)
    multi_label = labels is not None and labels.ndim == 2
    accuracy_of = multi_label_accuracy if multi_label else single_label_accuracy
    wanted = None
    if labels is not None:  # what every conditional run is asked for: the file's conditions, else half B's labels
        wanted = labels[half_b]
        if args.conditions is not None:
            wanted = multi_hot(read_iclevr_conditions(args.conditions, class_names), len(class_names))
        wanted = repeat_to(wanted, args.num_samples or len(half_b))
    os.makedirs(args.output_dir, exist_ok=True)

    key = {"dataset": args.dataset, "split": args.split, "resolution": resolution, "mode": mode,
           "resize_mode": args.resize_mode, "seed": args.seed, "count": len(images), "network": network_id,
           "entries": ["features_a", "features_b", "logits_b"]}  # fmt: skip

    def reference():
        features_b, logits_b = extract_features(feature_network, images[half_b])
        return {"features_a": extract_features(feature_network, images[half_a])[0], "features_b": features_b,
                "logits_b": logits_b}  # fmt: skip

    cached, from_cache = cached_tensors(key, reference, args.cache_dir)
    features_a, features_b = cached["features_a"], cached["features_b"]
    judge_logits_b = None
    if judge is not None and labels is not None:
        judge_logits_b = cached["logits_b"] if judge is feature_network else extract_features(judge, images[half_b])[1]
    floor = {
        "fid": frechet_distance(features_a, features_b),
        "kid": kernel_distance(features_a, features_b)[0],
        "inception_score": inception_score(cached["logits_b"])[0],
        "accuracy": accuracy_of(judge_logits_b, labels[half_b]) if judge_logits_b is not None else None,
    }
    cache_note = ", features cached" if from_cache else ""
    print(
        f"real-vs-real floor (A: {len(half_a)} vs B: {len(half_b)} images{cache_note}): "
        f"FID {floor['fid']:.3f}, KID {floor['kid']:.5f}, IS {floor['inception_score']:.3f}",
        flush=True,
    )

    num_samples = args.num_samples or len(half_b)
    results, saved = [], {"images": [], "labels": [], "omega": [], "row": []}
    for path, pipe in pipes.items():
        conditional = pipe.num_classes is not None and labels is not None
        if pipe.num_classes is not None and labels is None:
            print(f"{path}: the dataset has no labels, so this conditional model is sampled unconditionally (null "
                  "condition, no guidance).", flush=True)  # fmt: skip
        requested = wanted if conditional else None
        judged = conditional and judge is not None  # accuracy needs the requested classes and a classifier
        training_scheduler_config = pipe.scheduler.config
        run_name = os.path.basename(os.path.normpath(path))
        for sampler, steps in args.samplers:
            pipe.scheduler = make_sampler(sampler, training_scheduler_config)
            steps = steps or default_num_steps(sampler, training_scheduler_config.num_train_timesteps)
            if args.compiled_sampling and sampler == "ddpm":
                pipe.enable_compiled_sampling()
            else:
                pipe.disable_compiled_sampling()
            for guidance_scale in args.guidance_scales if conditional else [1.0]:
                description = f"{run_name} {sampler}:{steps}" + (f" s={guidance_scale:g}" if conditional else "")
                start = time.time()
                generated = generate(
                    pipe, requested, num_samples, guidance_scale, steps, args.batch_size, args.seed + 1, description
                )
                seconds = time.time() - start
                features, logits = extract_features(feature_network, generated)
                judge_logits = None
                if judged:
                    judge_logits = logits if judge is feature_network else extract_features(judge, generated)[1]
                kid_mean, kid_std = kernel_distance(features_a, features)
                result = {
                    "pipeline": path,
                    "beta_schedule": training_scheduler_config.beta_schedule,
                    "prediction_type": training_scheduler_config.prediction_type,
                    "sampler": sampler,
                    "num_inference_steps": steps,
                    "guidance_scale": guidance_scale,
                    "omega": guidance_scale - 1,
                    "conditional": conditional,
                    "fid": frechet_distance(features_a, features),
                    "kid": kid_mean,
                    "kid_std": kid_std,
                    "inception_score": inception_score(logits)[0],
                    "accuracy": accuracy_of(judge_logits, requested) if judged else None,
                    # multi-label: the same accuracy by number of labels asked for (scenes of 1, 2, 3 objects)
                    "accuracy_by_label_count": multi_label_accuracy_by_count(judge_logits, requested)
                    if judged and multi_label
                    else None,
                    "num_samples": len(generated),
                    "sample_seconds": round(seconds, 1),
                    "compiled_sampling": bool(args.compiled_sampling and sampler == "ddpm"),
                    "grid": grid_name(path, sampler, steps, guidance_scale, len(pipes)),
                }
                results.append(result)
                if args.save_samples:
                    keep_samples(saved, generated, requested, result["omega"] if conditional else None, len(results))
                save_class_grid(generated, requested, class_names, os.path.join(args.output_dir, result["grid"]))
                accuracy = f", accuracy {result['accuracy']:.4f}" if judged else ""
                print(
                    f"{run_name} {sampler} {steps} steps, s={guidance_scale:g} "
                    f"(omega={guidance_scale - 1:g}): FID {result['fid']:.3f}, KID {kid_mean:.5f}, "
                    f"IS {result['inception_score']:.3f}{accuracy} ({seconds:.0f} s)",
                    flush=True,
                )
        pipe.scheduler = make_sampler("ddpm", training_scheduler_config)
        pipe.disable_compiled_sampling()

    report = {
        "pipelines": args.pipeline,
        "dataset": args.dataset,
        "split": args.split,
        "feature_network": "inception-v3" if args.inception else args.feature_network,
        "judge": args.feature_network,
        "reference_images": len(half_a),
        "floor": floor,
        "results": results,
    }
    with open(os.path.join(args.output_dir, "eval.json"), "w") as f:
        json.dump(report, f, indent=2)
    if args.save_samples:
        width = max((labels.shape[1] for labels in saved["labels"] if labels.ndim == 2), default=None)
        if width is not None:  # multi-hot rows beside unconditional ones: those become rows of -1
            saved["labels"] = [np.full((len(x), width), -1) if x.ndim == 1 else x for x in saved["labels"]]
        arrays = {name: np.concatenate(parts) for name, parts in saved.items()}
        np.savez_compressed(os.path.join(args.output_dir, "samples.npz"), **arrays)
    swept = [r for r in results if r["accuracy"] is not None]
    has_plot = len({r["guidance_scale"] for r in swept}) > 1
    if has_plot:
        plot_sweep(swept, floor, os.path.join(args.output_dir, "guidance_sweep.png"))
    write_report(report, os.path.join(args.output_dir, "report.md"), has_plot)
    return report


def keep_samples(saved, generated, requested, omega, row_number):
    """Add one result row's images to `saved` as uint8 (N, H, W) or (N, H, W, C), with their labels (class ids, or
    multi-hot rows; -1 where unconditional), omega (NaN where no guidance applied) and 0-based row in eval.json."""
    pixels = (generated * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    saved["images"].append(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    labels = np.full(len(generated), -1) if requested is None else requested[: len(generated)].cpu().numpy()
    saved["labels"].append(labels)
    saved["omega"].append(np.full(len(generated), np.nan if omega is None else omega, dtype=np.float32))
    saved["row"].append(np.full(len(generated), row_number - 1))


def grid_name(path, sampler, steps, guidance_scale, num_pipelines):
    run = f"{os.path.basename(os.path.normpath(path))}_" if num_pipelines > 1 else ""
    return f"samples_{run}{sampler}{steps}_s{guidance_scale:g}.png"


def save_class_grid(generated, requested, class_names, path, per_class=8):
    """One row per class (up to 10 classes; for multi-label conditions, the first 10 distinct ones), `per_class`
    samples each; unconditional: the first 64 samples (fewer in a square as near as they fill)."""
    upscale = max(1, 64 // generated.shape[-1])
    if requested is None:
        grid = square_grid(tensor_to_pil(generated[:64] * 2 - 1, upscale))
    else:
        if requested.ndim == 2:  # multi-hot conditions: the first 10 distinct ones
            distinct = []
            for condition in requested:
                if len(distinct) < 10 and not any(torch.equal(condition, seen) for seen in distinct):
                    distinct.append(condition)
            row_masks = [(requested == condition).all(dim=1) for condition in distinct]
        else:
            row_masks = [requested == class_id for class_id in range(min(len(class_names), 10))]
        row_masks = [mask for mask in row_masks if mask.any()]
        per_class = min([per_class, *(int(mask.sum()) for mask in row_masks)])  # equal rows, small runs included
        rows = [generated[mask][:per_class] for mask in row_masks]
        grid = image_grid(tensor_to_pil(torch.cat(rows) * 2 - 1, upscale), len(rows), per_class)
    grid.save(path)


def plot_sweep(results, floor, path):
    """FID against accuracy, one line per (run, sampler) through its guidance scales, each point labelled omega."""
    figure, axis = plt.subplots(figsize=(5.5, 4.2))
    lines = {}
    for result in results:
        run = os.path.basename(os.path.normpath(result["pipeline"]))
        lines.setdefault(f"{run} {result['sampler']} {result['num_inference_steps']}", []).append(result)
    for label, points in lines.items():
        fids, accuracies = [r["fid"] for r in points], [100 * r["accuracy"] for r in points]
        axis.plot(fids, accuracies, "o-", label=label if len(lines) > 1 else None)
        for result, fid, accuracy in zip(points, fids, accuracies):
            axis.annotate(f"ω={result['omega']:g}", (fid, accuracy), textcoords="offset points", xytext=(5, -10))
    axis.axvline(floor["fid"], color="grey", linestyle="--", label=f"real vs real FID {floor['fid']:.2f}")
    axis.set_xlabel("FID (lower is better)")
    axis.set_ylabel("conditional accuracy (%)")
    axis.set_title("Guidance: quality / diversity trade-off")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def label_count_cell(split):
    """'1: 97.9% (48), 2: ...': accuracy and number of images for each number of labels asked for."""
    if not split:
        return ""
    return ", ".join(f"{count}: {100 * row['accuracy']:.1f}% ({row['images']})" for count, row in split.items())


def write_report(report, path, has_plot):
    floor = report["floor"]
    floor_accuracy = "" if floor["accuracy"] is None else f"{100 * floor['accuracy']:.1f}%"
    by_count = any(r.get("accuracy_by_label_count") for r in report["results"])
    lines = [
        f"# Evaluation on `{report['dataset']}`",
        "",
        f"Features (FID, KID) and IS: {report['feature_network']}; accuracy judge: {report['judge'] or 'none'}; "
        f"reference: {report['reference_images']} real images (half A of split {report['split']!r}). "
        f"Runs: {', '.join(report['pipelines'])}.",
        "",
        "| run | schedule | prediction | sampler | steps | omega (s - 1) | FID | KID | IS | accuracy | time |"
        + (" accuracy by labels asked |" if by_count else ""),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if by_count else ""),
        f"| real vs real (half B) | | | | | | {floor['fid']:.3f} | {floor['kid']:.5f} | "
        f"{floor['inception_score']:.3f} | {floor_accuracy} | |" + (" |" if by_count else ""),
    ]
    for r in report["results"]:
        accuracy = f"{100 * r['accuracy']:.1f}%" if r["accuracy"] is not None else ""
        omega = f"{r['omega']:g}" if r["conditional"] else "unconditional"  # no guidance: no omega
        lines.append(
            f"| {os.path.basename(os.path.normpath(r['pipeline']))} | {r['beta_schedule']} | {r['prediction_type']} | "
            f"{r['sampler']} | {r['num_inference_steps']} | {omega} | {r['fid']:.3f} | {r['kid']:.5f} | "
            f"{r['inception_score']:.3f} | {accuracy} | {r['sample_seconds']} s |"
            + (f" {label_count_cell(r['accuracy_by_label_count'])} |" if by_count else "")
        )
    lines.append("")
    if has_plot:
        lines += ["![guidance sweep](guidance_sweep.png)", ""]
    lines += [f"![{r['grid']}]({r['grid']})" for r in report["results"]]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(parse_args())
