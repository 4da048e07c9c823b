"""Conditional accuracy of a digits DDPM, judged by an SVC trained on the real 8x8 digits.

    python train_scripts/eval_digits.py --pipeline outputs/digits [--num_per_class 100] [--guidance_scales 1 2 3 5]
        [--sampler ddpm|ddim|dpm_solver++] [--num_inference_steps N]

For every guidance scale, samples --num_per_class images of each digit, downscales them to 8x8 by area averaging,
and reports the share the SVC classifies as the digit asked for, beside the SVC's accuracy on held-out real digits.
Writes PIPELINE/eval_digits.json (or --output).
"""

import argparse
import json
import os
import time

import numpy as np
import torch

from ddpm_hf import DDPMCFGPipeline
from ddpm_hf.metrics.digits_classifier import images_to_digits_features, train_digits_classifier
from ddpm_hf.sampling import SAMPLERS, default_num_steps, make_sampler


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Conditional accuracy of a digits DDPM.")
    parser.add_argument("--pipeline", type=str, required=True, help="Folder of a saved DDPMCFGPipeline.")
    parser.add_argument("--num_per_class", type=int, default=100, help="Samples per digit.")
    parser.add_argument("--guidance_scales", type=float, nargs="+", default=[3.0], help="Guidance scales s to try.")
    parser.add_argument(
        "--sampler", type=str, default="ddpm", choices=list(SAMPLERS), help="Scheduler to sample with."
    )
    parser.add_argument(
        "--num_inference_steps", type=int, default=None, help="Sampling steps; default T for ddpm, 50 ddim, 20 dpm."
    )
    parser.add_argument("--batch_size", type=int, default=500, help="Images per pipeline call.")
    parser.add_argument("--seed", type=int, default=1234, help="Seed of the samples.")
    parser.add_argument("--output", type=str, default=None, help="JSON path; default PIPELINE/eval_digits.json.")
    args = parser.parse_args(argv)
    if args.num_per_class < 1 or args.batch_size < 1:
        raise ValueError("--num_per_class and --batch_size must be >= 1.")
    if any(scale < 0 for scale in args.guidance_scales):
        raise ValueError(f"--guidance_scales must be >= 0, got {args.guidance_scales}.")
    return args


def main(args):
    pipe = DDPMCFGPipeline.from_pretrained(args.pipeline)
    pipe.set_progress_bar_config(disable=True)
    if pipe.num_classes != 10 or pipe.unet.config.in_channels != 1:
        raise ValueError(f"{args.pipeline} is not a 10-class greyscale model (classes: {pipe.num_classes}).")
    pipe.scheduler = make_sampler(args.sampler, pipe.scheduler.config)
    num_steps = args.num_inference_steps or default_num_steps(args.sampler, pipe.scheduler.config.num_train_timesteps)
    classifier, real_accuracy = train_digits_classifier()
    requested = np.repeat(np.arange(10), args.num_per_class)
    results = []
    for guidance_scale in args.guidance_scales:
        generator = torch.Generator().manual_seed(args.seed)
        start, predictions = time.time(), []
        for first in range(0, len(requested), args.batch_size):
            labels = requested[first : first + args.batch_size].tolist()
            images = pipe(
                class_labels=labels,
                guidance_scale=guidance_scale,
                num_inference_steps=num_steps,
                generator=generator,
                output_type="pt",
            ).images
            predictions.append(classifier.predict(images_to_digits_features(images)))
        predictions = np.concatenate(predictions)
        per_class = [float((predictions[requested == digit] == digit).mean()) for digit in range(10)]
        result = {
            "guidance_scale": guidance_scale,
            "omega": guidance_scale - 1,
            "accuracy": float((predictions == requested).mean()),
            "worst_class_accuracy": min(per_class),
            "per_class_accuracy": per_class,
            "num_samples": len(requested),
            "sampler": args.sampler,
            "num_inference_steps": num_steps,
            "sample_seconds": round(time.time() - start, 1),
        }
        results.append(result)
        print(
            f"{args.sampler} {num_steps} steps, s={guidance_scale:g} (omega={guidance_scale - 1:g}): "
            f"accuracy {result['accuracy']:.3f} "
            f"(worst class {result['worst_class_accuracy']:.2f}) in {result['sample_seconds']} s; "
            f"SVC on held-out real digits: {real_accuracy:.3f}",
            flush=True,
        )
    report = {"pipeline": args.pipeline, "classifier_real_accuracy": real_accuracy, "results": results}
    output = args.output or os.path.join(args.pipeline, "eval_digits.json")
    with open(output, "w") as f:
        json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main(parse_args())
