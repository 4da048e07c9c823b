"""Evaluate saved DDPMCFGPipelines against a dataset: FID, KID, IS and conditional accuracy, over guidance scales,
samplers and runs; conditional and unconditional models alike.

    python train_scripts/evaluate.py --pipeline outputs/digits --dataset digits \
        --feature_network outputs/digits_classifier --output_dir outputs/digits_eval
    python train_scripts/evaluate.py --pipeline outputs/afhq_64_* --dataset huggan/AFHQv2 --split validation \
        --feature_network outputs/afhq_classifier --guidance_scales 3 --sampler ddpm ddim:50 dpm_solver++:20 ...

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

import torch
from diffusers import DiffusionPipeline
from tqdm.auto import tqdm

from ddpm_hf import DDPMCFGPipeline
from ddpm_hf.data import RESIZE_MODES, load_image_tensors, multi_hot, read_iclevr_conditions
from ddpm_hf.hub import check_classifier_folder, check_dataset_source, check_pipeline_class, check_pipeline_source
from ddpm_hf.metrics import extract_features, file_fingerprint, inception_feature_network
from ddpm_hf.metrics.evaluation import (
    check_data_matches,
    keep_samples,
    real_floor,
    reference_features,
    repeat_to,
    save_samples,
    score_samples,
    split_halves,
)
from ddpm_hf.models import ImageClassifier
from ddpm_hf.sampling import SAMPLERS, default_num_steps, make_sampler
from ddpm_hf.viz.eval_report import grid_name, run_name, save_class_grid, save_eval_figures

COURSE_OMEGAS = (0, 0.5, 1, 2, 3, 5)
# What --pipeline takes: ddpm-hf's image pipeline, and diffusers' own unconditional one (which it loads unchanged)
PIPELINE_CLASSES = ("DDPMCFGPipeline", "DDPMPipeline")
# each half needs two images: FID's covariance (and KID's unbiased estimate) are undefined for one
MIN_DATASET_IMAGES = 4
INCEPTION_ID = "inception-v3-compat 2048 logits_unbiased"  # the Inception features' entry in the reference cache


def build_parser():
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
    return parser


def parse_args(argv=None):
    return check_args(build_parser().parse_args(argv))


def check_args(args):
    """Refuse bad flags before anything is loaded, naming the value and what is allowed; fill in the defaults that
    depend on the machine (device, compiled sampling)."""
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
        check_classifier_folder("--feature_network", args.feature_network)
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
        check_pipeline_source("--pipeline", path, PIPELINE_CLASSES, "evaluate.py scores")
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
                check_pipeline_class("--pipeline", path, model_index, PIPELINE_CLASSES, "evaluate.py scores")
        pipe = DDPMCFGPipeline.from_pretrained(path).to(args.device)
        pipe.set_progress_bar_config(disable=True)  # one bar per guidance scale instead of one per batch
        pipes[path] = pipe
    first = next(iter(pipes.values()))
    kind = (image_side(first, args.pipeline[0]), first.unet.config.in_channels)
    for path, pipe in pipes.items():
        if (image_side(pipe, path), pipe.unet.config.in_channels) != kind:
            raise ValueError(f"{path} makes other images than {args.pipeline[0]}; evaluate them separately.")
    return pipes


def sample_sweep(args, path, pipe, requested, num_samples):
    """
    Samples `pipe` with every sampler of --sampler and, for a conditional run (`requested` labels), every guidance
    scale: yields (sampler, steps, guidance scale, images in [0, 1], seconds) per result row. The model's own
    scheduler is back in place afterwards.
    """
    training_scheduler_config, conditional = pipe.scheduler.config, requested is not None
    for sampler, steps in args.samplers:
        pipe.scheduler = make_sampler(sampler, training_scheduler_config)
        steps = steps or default_num_steps(sampler, training_scheduler_config.num_train_timesteps)
        if args.compiled_sampling and sampler == "ddpm":
            pipe.enable_compiled_sampling()
        else:
            pipe.disable_compiled_sampling()
        for guidance_scale in args.guidance_scales if conditional else [1.0]:
            description = f"{run_name(path)} {sampler}:{steps}" + (f" s={guidance_scale:g}" if conditional else "")
            start = time.time()
            generated = generate(
                pipe, requested, num_samples, guidance_scale, steps, args.batch_size, args.seed + 1, description
            )
            yield sampler, steps, guidance_scale, generated, time.time() - start
    pipe.scheduler = make_sampler("ddpm", training_scheduler_config)
    pipe.disable_compiled_sampling()


def load_networks(args):
    """(judge, feature network, its id in the reference cache): the classifier of --feature_network judges accuracy;
    the features come from it, or from Inception-v3 with --inception."""
    judge = None
    if args.feature_network is not None:
        judge = ImageClassifier.from_pretrained(args.feature_network).eval().to(args.device)
    if args.inception:
        return judge, inception_feature_network(args.inception_weights).to(args.device), INCEPTION_ID
    network_id = file_fingerprint(os.path.join(args.feature_network, "diffusion_pytorch_model.safetensors"))
    return judge, judge, network_id


def main(args):
    # everything is loaded and checked against everything else before anything is sampled or written
    pipes = load_pipelines(args)
    resolution = image_side(next(iter(pipes.values())), args.pipeline[0])
    judge, feature_network, network_id = load_networks(args)
    images, labels, class_names = load_image_tensors(
        args.dataset, resolution=resolution, split=args.split, resize_mode=args.resize_mode, progress=True
    )
    check_data_matches(pipes, judge, images, labels, class_names, args.dataset, args.split, args.feature_network,
                       args.conditions, MIN_DATASET_IMAGES)  # fmt: skip
    images = (images + 1) / 2  # [0, 1], as the pipeline returns them
    half_a, half_b = split_halves(len(images), args.seed)
    wanted = None
    if labels is not None:  # what every conditional run is asked for: the file's conditions, else half B's labels
        wanted = labels[half_b]
        if args.conditions is not None:
            wanted = multi_hot(read_iclevr_conditions(args.conditions, class_names), len(class_names))
        wanted = repeat_to(wanted, args.num_samples or len(half_b))
    os.makedirs(args.output_dir, exist_ok=True)

    mode = "L" if images.shape[1] == 1 else "RGB"
    key = dict(dataset=args.dataset, split=args.split, resolution=resolution, mode=mode, resize_mode=args.resize_mode,
               seed=args.seed, count=len(images), network=network_id)  # fmt: skip
    reference, from_cache = reference_features(feature_network, images, half_a, half_b, key, args.cache_dir)
    judge_logits_b = None
    if judge is not None and labels is not None:
        judge_logits_b = (
            reference["logits_b"] if judge is feature_network else extract_features(judge, images[half_b])[1]
        )
    floor = real_floor(reference, judge_logits_b, None if labels is None else labels[half_b])
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
        config, rows = pipe.scheduler.config, sample_sweep(args, path, pipe, requested, num_samples)
        for sampler, steps, guidance_scale, generated, seconds in rows:
            features, logits = extract_features(feature_network, generated)
            judge_logits = None
            if judged:
                judge_logits = logits if judge is feature_network else extract_features(judge, generated)[1]
            result = {
                "pipeline": path,
                "beta_schedule": config.beta_schedule,
                "prediction_type": config.prediction_type,
                "sampler": sampler,
                "num_inference_steps": steps,
                "guidance_scale": guidance_scale,
                "omega": guidance_scale - 1,
                "conditional": conditional,
                **score_samples(reference["features_a"], features, logits, judge_logits, requested),
                "num_samples": len(generated),
                "sample_seconds": round(seconds, 1),
                "compiled_sampling": bool(args.compiled_sampling and sampler == "ddpm"),
                "grid": grid_name(path, sampler, steps, guidance_scale, len(pipes)),
            }
            results.append(result)
            if args.save_samples:
                keep_samples(saved, generated, requested, result["omega"] if conditional else None, len(results) - 1)
            save_class_grid(generated, requested, class_names, os.path.join(args.output_dir, result["grid"]))
            print_result(result, judged, seconds)

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
        save_samples(saved, os.path.join(args.output_dir, "samples.npz"))
    save_eval_figures(report, args.output_dir)
    return report


def print_result(result: dict, judged: bool, seconds: float) -> None:
    accuracy = f", accuracy {result['accuracy']:.4f}" if judged else ""
    print(
        f"{run_name(result['pipeline'])} {result['sampler']} {result['num_inference_steps']} steps, "
        f"s={result['guidance_scale']:g} (omega={result['omega']:g}): FID {result['fid']:.3f}, "
        f"KID {result['kid']:.5f}, IS {result['inception_score']:.3f}{accuracy} ({seconds:.0f} s)",
        flush=True,
    )


if __name__ == "__main__":
    main(parse_args())
