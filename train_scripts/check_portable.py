"""Check that a saved DDPMCFGPipeline folder loads with plain diffusers and gives the images ddpm_hf gives.

    python train_scripts/check_portable.py --pipeline outputs/digits [--seed 0] [--num_inference_steps N]

Samples one image per class (or 4 for unconditional models) with `DDPMCFGPipeline.from_pretrained`, then again in a
fresh Python process where ddpm_hf cannot be imported, with `DiffusionPipeline.from_pretrained(...,
trust_remote_code=True)`, and compares the two. Exit status 0 when they are identical.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import torch

from ddpm_hf import DDPMCFGPipeline

PLAIN_DIFFUSERS = """
import sys
sys.modules["ddpm_hf"] = None  # makes `import ddpm_hf` fail in this process
sys.modules["pipelines"] = None
import numpy as np, torch
from diffusers import DiffusionPipeline

pipe = DiffusionPipeline.from_pretrained({folder!r}, trust_remote_code=True)
pipe.set_progress_bar_config(disable=True)
images = pipe(generator=torch.Generator().manual_seed({seed}), output_type="np", **{call_kwargs!r}).images
np.save({output!r}, images)
print(type(pipe).__module__, type(pipe.scheduler).__module__, type(pipe.unet).__module__)
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Does a saved pipeline load with plain diffusers, same images?")
    parser.add_argument("--pipeline", type=str, required=True, help="Folder of a saved DDPMCFGPipeline.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of both samplings.")
    parser.add_argument("--num_inference_steps", type=int, default=None, help="Sampling steps; default T.")
    parser.add_argument("--guidance_scale", type=float, default=3.0, help="Guidance scale of both samplings.")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.pipeline, "model_index.json")):
        raise ValueError(f"{args.pipeline} has no model_index.json; give the folder of a saved pipeline.")
    return args


def main(args):
    pipe = DDPMCFGPipeline.from_pretrained(args.pipeline)
    pipe.set_progress_bar_config(disable=True)
    call_kwargs = {"guidance_scale": args.guidance_scale, "num_inference_steps": args.num_inference_steps}
    if pipe.num_classes is None:
        call_kwargs["batch_size"] = 4
    elif pipe.is_multi_label:  # every label once, alone and paired with the next one
        labels = range(pipe.num_classes)
        call_kwargs["class_labels"] = [[label] for label in labels] + [[label, (label + 1) % pipe.num_classes]
                                                                       for label in labels]  # fmt: skip
    else:
        call_kwargs["class_labels"] = list(range(pipe.num_classes))
    ours = pipe(generator=torch.Generator().manual_seed(args.seed), output_type="np", **call_kwargs).images
    with tempfile.TemporaryDirectory() as scratch:
        output = os.path.join(scratch, "plain.npy")
        script = textwrap.dedent(
            PLAIN_DIFFUSERS.format(
                folder=os.path.abspath(args.pipeline), seed=args.seed, call_kwargs=call_kwargs, output=output
            )
        )
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=scratch)
        if result.returncode != 0:
            print(result.stderr[-3000:], file=sys.stderr)
            raise SystemExit("plain diffusers could not load or sample the folder")
        plain = np.load(output)
    difference = float(np.abs(plain - ours).max())
    report = {
        "pipeline": args.pipeline,
        "images": len(ours),
        "plain_diffusers_classes": result.stdout.split(),
        "max_abs_difference": difference,
        "identical": bool(np.array_equal(plain, ours)),
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    raise SystemExit(0 if main(parse_args())["identical"] else 1)
