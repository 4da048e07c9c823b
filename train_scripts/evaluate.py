"""Evaluate saved DDPMCFGPipelines against a dataset: FID, KID, IS and conditional accuracy, over guidance scales,
samplers and runs.

    python train_scripts/evaluate.py --pipeline outputs/digits --dataset digits \
        --feature_network outputs/digits_classifier --output_dir outputs/digits_eval
    python train_scripts/evaluate.py --pipeline outputs/afhq_64_* --dataset huggan/AFHQv2 --split validation \
        --feature_network outputs/afhq_classifier --guidance_scales 3 --sampler ddpm ddim:50 dpm_solver++:20 ...

The dataset is split at random into two disjoint halves A and B. A is the reference; B, compared with A, gives the
real-vs-real floor of every metric, printed beside it. For every guidance scale, as many images as B holds are
generated with B's labels, and scored against A: FID and KID on the feature network's features, IS and conditional
accuracy on its class predictions. Feature network: a classifier trained by train_classifier.py (offline), or the
standard Inception-v3 with --inception (needs torch-fidelity; IS and accuracy still come from --feature_network).
Several --pipeline folders (e.g. lab 2's schedule x prediction-type runs) and several --sampler NAME:STEPS give
one table. Writes OUT/eval.json, OUT/report.md (the table), OUT/guidance_sweep.png (FID against accuracy, a line per
run and sampler) and one grid per row (one row of images per class).
Reference features are cached (--cache_dir).
"""

import argparse
import json
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ddpm_hf import DDPMCFGPipeline  # noqa: E402
from ddpm_hf.data import RESIZE_MODES, load_image_tensors, multi_hot, read_iclevr_conditions  # noqa: E402
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
from ddpm_hf.viz import image_grid, tensor_to_pil  # noqa: E402

COURSE_OMEGAS = (0, 0.5, 1, 2, 3, 5)


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
    parser.add_argument("--split", type=str, default="train", help="Split of the dataset to compare with.")
    parser.add_argument("--feature_network", type=str, required=True, help="A classifier from train_classifier.py.")
    parser.add_argument("--inception", action="store_true", help="FID/KID on Inception-v3 features instead.")
    parser.add_argument("--inception_weights", type=str, default=None, help="Local Inception weights file.")
    parser.add_argument(
        "--guidance_scales",
        type=float,
        nargs="+",
        default=[1 + omega for omega in COURSE_OMEGAS],
        help="Guidance scales s (omega = s - 1); default: omega 0, 0.5, 1, 2, 3, 5.",
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
    parser.add_argument("--output_dir", type=str, required=True, help="Where eval.json and the report go.")
    args = parser.parse_args(argv)
    if any(scale < 0 for scale in args.guidance_scales):
        raise ValueError(f"--guidance_scales must be >= 0, got {args.guidance_scales}.")
    if args.num_samples is not None and args.num_samples < 2:
        raise ValueError(f"--num_samples must be >= 2, got {args.num_samples}.")
    args.samplers = [parse_sampler(value, args.num_inference_steps) for value in args.sampler]
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.compiled_sampling is None:
        args.compiled_sampling = torch.device(args.device).type == "cuda"
    if args.resize_mode not in RESIZE_MODES:
        raise ValueError(f"Unknown --resize_mode {args.resize_mode!r}; choose one of {list(RESIZE_MODES)}.")
    if args.conditions is not None and not os.path.isfile(args.conditions):
        raise ValueError(f"--conditions {args.conditions!r} is not a file.")
    if not os.path.isfile(os.path.join(args.feature_network, "config.json")):
        raise ValueError(f"--feature_network {args.feature_network!r} is not a saved classifier (no config.json).")
    return args


def parse_sampler(value: str, default_steps: int | None):
    """ "ddim:50" -> ("ddim", 50); "ddim" -> ("ddim", default_steps or None for the sampler's usual)."""
    name, _, steps = value.partition(":")
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r} in --sampler {value!r}; choose from {list(SAMPLERS)}.")
    if steps and not (steps.isdigit() and int(steps) >= 1):
        raise ValueError(f"--sampler {value!r}: steps must be a whole number >= 1.")
    return name, int(steps) if steps else default_steps


def repeat_to(requested: torch.Tensor, count: int) -> torch.Tensor:
    """`requested` (class ids (N,) or multi-hot rows (N, K)) repeated in turn to `count` entries."""
    repeats = count // len(requested) + 1
    return requested.repeat(repeats, *[1] * (requested.ndim - 1))[:count]


def split_halves(count: int, seed: int):
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[: count // 2], order[count // 2 :]


def generate(pipe, labels, count, guidance_scale, num_steps, batch_size, seed):
    """`count` images in [0, 1] for the requested labels (unconditional when `labels` is None)."""
    generator = torch.Generator().manual_seed(seed)
    chunks = []
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
    return torch.cat(chunks)


def main(args):
    os.makedirs(args.output_dir, exist_ok=True)
    pipes = {}
    for path in args.pipeline:
        pipe = DDPMCFGPipeline.from_pretrained(path).to(args.device)
        pipe.set_progress_bar_config(disable=True)
        pipes[path] = pipe
    unet_config = next(iter(pipes.values())).unet.config
    for path, pipe in pipes.items():
        if (pipe.unet.config.sample_size, pipe.unet.config.in_channels) != (
            unet_config.sample_size,
            unet_config.in_channels,
        ):
            raise ValueError(f"{path} makes other images than {args.pipeline[0]}; evaluate them separately.")
    mode = "L" if unet_config.in_channels == 1 else "RGB"
    classifier = ImageClassifier.from_pretrained(args.feature_network).eval().to(args.device)
    weights = os.path.join(args.feature_network, "diffusion_pytorch_model.safetensors")
    feature_network = (
        inception_feature_network(args.inception_weights).to(args.device) if args.inception else classifier
    )
    network_id = "inception-v3-compat" if args.inception else file_fingerprint(weights)

    images, labels, class_names = load_image_tensors(
        args.dataset, resolution=unet_config.sample_size, mode=mode, resize_mode=args.resize_mode
    )
    images = (images + 1) / 2  # [0, 1], as the pipeline returns them
    half_a, half_b = split_halves(len(images), args.seed)
    key = {"dataset": args.dataset, "split": args.split, "resolution": unet_config.sample_size, "mode": mode,
           "resize_mode": args.resize_mode,
           "seed": args.seed, "count": len(images), "network": network_id}  # fmt: skip

    def reference():
        return {
            "features_a": extract_features(feature_network, images[half_a])[0],
            "features_b": extract_features(feature_network, images[half_b])[0],
        }

    def features_and_judgement(images):
        """Feature-network features and the judge's logits, in one pass when the judge is the feature network."""
        features, logits = extract_features(feature_network, images)
        if feature_network is not classifier:
            logits = extract_features(classifier, images)[1]
        return features, logits

    cached, from_cache = cached_tensors(key, reference, args.cache_dir)
    features_a, features_b = cached["features_a"], cached["features_b"]
    _, judge_logits_b = extract_features(classifier, images[half_b])
    multi_label = labels is not None and labels.ndim == 2
    accuracy_of = multi_label_accuracy if multi_label else single_label_accuracy
    if args.conditions is not None and not multi_label:
        raise ValueError(f"--conditions is for multi-label data; {args.dataset!r} has one label per image.")
    floor = {
        "fid": frechet_distance(features_a, features_b),
        "kid": kernel_distance(features_a, features_b)[0],
        "inception_score": inception_score(judge_logits_b)[0],
        "accuracy": accuracy_of(judge_logits_b, labels[half_b]) if labels is not None else None,
    }
    cache_note = ", features cached" if from_cache else ""
    print(
        f"real-vs-real floor (A: {len(half_a)} vs B: {len(half_b)} images{cache_note}): "
        f"FID {floor['fid']:.3f}, KID {floor['kid']:.5f}, IS {floor['inception_score']:.3f}",
        flush=True,
    )

    num_samples = args.num_samples or len(half_b)
    if labels is not None:  # what every conditional run is asked for: the file's conditions, else half B's labels
        wanted = labels[half_b]
        if args.conditions is not None:
            wanted = multi_hot(read_iclevr_conditions(args.conditions, class_names), len(class_names))
        wanted = repeat_to(wanted, num_samples)
    results = []
    for path, pipe in pipes.items():
        conditional = pipe.num_classes is not None and labels is not None
        requested = wanted if conditional else None
        training_scheduler_config = pipe.scheduler.config
        for sampler, steps in args.samplers:
            pipe.scheduler = make_sampler(sampler, training_scheduler_config)
            steps = steps or default_num_steps(sampler, training_scheduler_config.num_train_timesteps)
            if args.compiled_sampling and sampler == "ddpm":
                pipe.enable_compiled_sampling()
            else:
                pipe.disable_compiled_sampling()
            for guidance_scale in args.guidance_scales if conditional else [1.0]:
                start = time.time()
                generated = generate(
                    pipe, requested, num_samples, guidance_scale, steps, args.batch_size, args.seed + 1
                )
                seconds = time.time() - start
                features, judge_logits = features_and_judgement(generated)
                kid_mean, kid_std = kernel_distance(features_a, features)
                result = {
                    "pipeline": path,
                    "beta_schedule": training_scheduler_config.beta_schedule,
                    "prediction_type": training_scheduler_config.prediction_type,
                    "sampler": sampler,
                    "num_inference_steps": steps,
                    "guidance_scale": guidance_scale,
                    "omega": guidance_scale - 1,
                    "fid": frechet_distance(features_a, features),
                    "kid": kid_mean,
                    "kid_std": kid_std,
                    "inception_score": inception_score(judge_logits)[0],
                    "accuracy": accuracy_of(judge_logits, requested) if conditional else None,
                    # multi-label: the same accuracy by number of labels asked for (scenes of 1, 2, 3 objects)
                    "accuracy_by_label_count": multi_label_accuracy_by_count(judge_logits, requested)
                    if conditional and multi_label
                    else None,
                    "num_samples": len(generated),
                    "sample_seconds": round(seconds, 1),
                    "compiled_sampling": bool(args.compiled_sampling and sampler == "ddpm"),
                    "grid": grid_name(path, sampler, steps, guidance_scale, len(pipes)),
                }
                results.append(result)
                save_class_grid(generated, requested, class_names, os.path.join(args.output_dir, result["grid"]))
                accuracy = f", accuracy {result['accuracy']:.4f}" if conditional else ""
                print(
                    f"{os.path.basename(path.rstrip('/'))} {sampler} {steps} steps, s={guidance_scale:g} "
                    f"(omega={guidance_scale - 1:g}): FID {result['fid']:.3f}, KID {kid_mean:.5f}, "
                    f"IS {result['inception_score']:.3f}{accuracy} ({seconds:.0f} s)",
                    flush=True,
                )
        pipe.scheduler = make_sampler("ddpm", training_scheduler_config)
        pipe.disable_compiled_sampling()

    report = {
        "pipelines": args.pipeline,
        "dataset": args.dataset,
        "feature_network": "inception-v3" if args.inception else args.feature_network,
        "judge": args.feature_network,
        "reference_images": len(half_a),
        "floor": floor,
        "results": results,
    }
    with open(os.path.join(args.output_dir, "eval.json"), "w") as f:
        json.dump(report, f, indent=2)
    swept = [r for r in results if r["accuracy"] is not None]
    has_plot = len({r["guidance_scale"] for r in swept}) > 1
    if has_plot:
        plot_sweep(swept, floor, os.path.join(args.output_dir, "guidance_sweep.png"))
    write_report(report, os.path.join(args.output_dir, "report.md"), has_plot)
    return report


def grid_name(path, sampler, steps, guidance_scale, num_pipelines):
    run = f"{os.path.basename(os.path.normpath(path))}_" if num_pipelines > 1 else ""
    return f"samples_{run}{sampler}{steps}_s{guidance_scale:g}.png"


def save_class_grid(generated, requested, class_names, path, per_class=8):
    """One row per class (up to 10 classes; for multi-label conditions, the first 10 distinct ones), `per_class`
    samples each; unconditional: 8x8 samples."""
    upscale = max(1, 64 // generated.shape[-1])
    if requested is None:
        picked = generated[:64]
        rows = len(picked) // 8
        grid = image_grid(tensor_to_pil(picked[: rows * 8] * 2 - 1, upscale), rows, 8)
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
        f"Features: {report['feature_network']}; judge (IS, accuracy): {report['judge']}; reference: "
        f"{report['reference_images']} real images (half A). Runs: {', '.join(report['pipelines'])}.",
        "",
        "| run | schedule | prediction | sampler | steps | omega (s - 1) | FID | KID | IS | accuracy | time |"
        + (" accuracy by labels asked |" if by_count else ""),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if by_count else ""),
        f"| real vs real (half B) | | | | | | {floor['fid']:.3f} | {floor['kid']:.5f} | "
        f"{floor['inception_score']:.3f} | {floor_accuracy} | |" + (" |" if by_count else ""),
    ]
    for r in report["results"]:
        accuracy = f"{100 * r['accuracy']:.1f}%" if r["accuracy"] is not None else ""
        lines.append(
            f"| {os.path.basename(os.path.normpath(r['pipeline']))} | {r['beta_schedule']} | {r['prediction_type']} | "
            f"{r['sampler']} | {r['num_inference_steps']} | {r['omega']:g} | {r['fid']:.3f} | {r['kid']:.5f} | "
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
