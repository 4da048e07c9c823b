"""Gradio demo of a ddpm-hf model: pick a class (or several labels, for a multi-label model), a guidance scale, a
sampler and a seed, and watch images appear.

    python spaces_app/app.py [--model outputs/digits] [--host 127.0.0.1] [--port 7860]

The model is the --model flag, else the DDPM_HF_MODEL environment variable, else outputs/digits (what the README's
main job writes): a saved DDPMCFGPipeline folder or a Hub id. The app loads it once and only calls the pipeline;
`/generate` is also an API endpoint for gradio_client.
"""

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import gradio as gr
import torch

from ddpm_hf import DDPMCFGPipeline
from ddpm_hf.schedulers import default_num_steps, make_sampler
from ddpm_hf.viz import save_denoising_gif, square_grid, tensor_to_pil

DEFAULT_MODEL = "outputs/digits"
SAMPLERS = {"DDPM": "ddpm", "DDIM": "ddim", "DPM-Solver++": "dpm_solver++"}
MAX_IMAGES = 16  # per request
MAX_STEPS = 1000  # per request, and never more than the model's T
MAX_GUIDANCE = 20.0
CONCURRENCY = 2  # requests sampled at once; the others wait in the queue
QUEUE_SIZE = 64
GIF_FRAMES = 30
PROGRESS = gr.Progress()  # Gradio fills in the request's own tracker where it sees this default
DISPLAY_SIZE = 256  # grids are enlarged (nearest neighbour) to about this many pixels per image side


def resolve_model(model: str | None) -> str:
    """The folder or Hub id to load: the flag, else $DDPM_HF_MODEL, else the main job's output folder."""
    model = model or os.environ.get("DDPM_HF_MODEL")
    if model:
        return model
    for candidate in (Path(DEFAULT_MODEL), Path(__file__).resolve().parents[1] / DEFAULT_MODEL):
        if (candidate / "model_index.json").is_file():
            return str(candidate)
    raise SystemExit(
        f"No model found at {DEFAULT_MODEL}. Create it with `bash scripts/main.sh` (trains the digits demo in about "
        "4 minutes on a CPU), or point the app at a saved pipeline with --model PATH_OR_HUB_ID or DDPM_HF_MODEL."
    )


def load_pipeline(model: str) -> DDPMCFGPipeline:
    pipe = DDPMCFGPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_demo(pipe: DDPMCFGPipeline, title: str = "ddpm-hf") -> gr.Blocks:
    """The Blocks app around `pipe`; the caller queues and launches it (see `main`)."""
    class_names = list(pipe.id2label.values()) if pipe.num_classes else []  # in id order
    multi_label = pipe.is_multi_label
    num_train_timesteps = pipe.scheduler.config.num_train_timesteps
    max_steps = min(MAX_STEPS, num_train_timesteps)
    size = pipe.unet.config.sample_size
    upscale = max(1, DISPLAY_SIZE // size)

    def selected_labels(class_name) -> list:
        """A multi-label model's labels from the multi-select (a list) or the API (names separated by commas)."""
        if isinstance(class_name, str):
            return [name.strip() for name in class_name.split(",") if name.strip()]
        return list(class_name or [])

    def check(class_name, guidance_scale, num_images, sampler, num_steps, seed):
        if multi_label:
            labels = selected_labels(class_name)
            unknown = [label for label in labels if label not in class_names]
            if unknown or not labels or len(set(labels)) != len(labels):
                raise gr.Error(
                    f"Labels {labels!r}: pick one or more labels, each once, from {class_names} (the API takes them "
                    "separated by commas)."
                )
        elif class_names and class_name not in class_names:
            raise gr.Error(f"Unknown class {class_name!r}; choose one of {class_names}.")
        if not class_names and class_name not in (None, ""):
            raise gr.Error("This model is unconditional; leave the class empty.")
        if not isinstance(guidance_scale, (int, float)) or not 0 <= guidance_scale <= MAX_GUIDANCE:
            raise gr.Error(f"Guidance scale must be between 0 and {MAX_GUIDANCE}, got {guidance_scale!r}.")
        if (
            not isinstance(num_images, (int, float))
            or num_images != int(num_images)
            or not 1 <= num_images <= MAX_IMAGES
        ):
            raise gr.Error(f"Number of images must be a whole number from 1 to {MAX_IMAGES}, got {num_images!r}.")
        if sampler not in SAMPLERS:
            raise gr.Error(f"Unknown sampler {sampler!r}; choose one of {list(SAMPLERS)}.")
        if not isinstance(num_steps, (int, float)) or num_steps != int(num_steps) or not 1 <= num_steps <= max_steps:
            raise gr.Error(f"Steps must be a whole number from 1 to {max_steps}, got {num_steps!r}.")
        if not isinstance(seed, (int, float)) or seed != int(seed) or not 0 <= seed < 2**63:
            raise gr.Error(f"Seed must be a whole number from 0 to 2**63 - 1, got {seed!r}.")

    def generate(class_name, guidance_scale, num_images, sampler, num_steps, seed, random_seed, progress=PROGRESS):
        check(class_name, guidance_scale, num_images, sampler, num_steps, seed)
        if random_seed:
            seed = random.randrange(2**31)
        num_images, num_steps, seed = int(num_images), int(num_steps), int(seed)
        # A pipeline per request: schedulers keep per-call state, the U-Net weights are shared.
        request_pipe = DDPMCFGPipeline(
            unet=pipe.unet, scheduler=make_sampler(SAMPLERS[sampler], pipe.scheduler.config), id2label=pipe.id2label
        )
        request_pipe.set_progress_bar_config(disable=True)
        frames, keep_every = [], max(1, num_steps // GIF_FRAMES)

        def on_step(_, step_index, timestep, callback_kwargs):
            progress((step_index + 1, num_steps), desc="Sampling", unit="steps")
            if step_index % keep_every == 0 or step_index == num_steps - 1:
                frames.append(square_grid(tensor_to_pil(callback_kwargs["sample"], upscale)))
            return {}

        start = time.perf_counter()
        class_labels = class_name or None
        if multi_label:  # one condition, the selected labels, for every image
            class_labels = [selected_labels(class_name)]
            class_name = ", ".join(class_labels[0])
        images = request_pipe(
            class_labels=class_labels,
            batch_size=num_images,
            guidance_scale=float(guidance_scale),
            num_inference_steps=num_steps,
            generator=torch.Generator().manual_seed(seed),
            output_type="pt",
            callback_on_step_end=on_step,
        ).images
        seconds = time.perf_counter() - start
        grid = square_grid(tensor_to_pil(images * 2 - 1, upscale))
        gif_path = os.path.join(tempfile.mkdtemp(prefix="ddpm_hf_space_"), "denoising.gif")
        save_denoising_gif(frames, gif_path)
        what = f"image(s) of {'labels' if multi_label else 'class'} {class_name}" if class_name else "image(s)"
        summary = f"{num_images} {what}, {sampler} {num_steps} steps, guidance {guidance_scale:g}, seed {seed}"
        return grid, gif_path, f"{summary}: {seconds:.2f} s"

    kind = "Multi-label" if multi_label else "Class-conditional" if class_names else "Unconditional"
    with gr.Blocks(title=title) as demo:
        gr.Markdown(
            f"# {title}\n{kind} DDPM, {size}x{size} images. "
            "Guidance scale s: eps = eps_uncond + s (eps_cond - eps_uncond); the course's omega is s - 1."
        )
        with gr.Row():
            with gr.Column():
                class_name = gr.Dropdown(
                    choices=class_names,
                    value=(class_names[:2] if multi_label else class_names[0]) if class_names else None,
                    multiselect=multi_label,
                    label="Labels" if multi_label else "Class",
                    visible=bool(class_names),
                )
                guidance_scale = gr.Slider(0, MAX_GUIDANCE, value=3.0, step=0.5, label="Guidance scale s")
                num_images = gr.Slider(1, MAX_IMAGES, value=9, step=1, label="Number of images")
                sampler = gr.Radio(list(SAMPLERS), value="DPM-Solver++", label="Sampler")
                num_steps = gr.Slider(
                    1, max_steps, value=default_num_steps("dpm_solver++", num_train_timesteps), step=1, label="Steps"
                )
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                    random_seed = gr.Checkbox(value=False, label="Random seed")
                button = gr.Button("Generate", variant="primary")
            with gr.Column():
                grid = gr.Image(label="Samples", type="pil", format="png", height=360, elem_id="samples")
                animation = gr.Image(label="Denoising", type="filepath", height=360, elem_id="denoising")
                timing = gr.Textbox(label="Time", elem_id="timing")
        sampler.change(
            lambda name: gr.update(value=min(default_num_steps(SAMPLERS[name], num_train_timesteps), max_steps)),
            inputs=sampler,
            outputs=num_steps,
            api_visibility="private",
        )
        # The /generate API takes plain values, so that `check` (not the sliders' own range checks) refuses bad ones
        # with a message naming the field. The Generate button runs the same function from the visible controls.
        with gr.Row(visible=False):
            api_inputs = [
                gr.Textbox(),
                gr.Number(),
                gr.Number(),
                gr.Textbox(),
                gr.Number(),
                gr.Number(),
                gr.Checkbox(),
            ]
            api_trigger = gr.Button()
        outputs = [grid, animation, timing]
        api_trigger.click(
            generate, api_inputs, outputs, api_name="generate", concurrency_limit=CONCURRENCY, concurrency_id="sample"
        )
        ui_inputs = [class_name, guidance_scale, num_images, sampler, num_steps, seed, random_seed]
        button.click(
            generate,
            ui_inputs,
            outputs,
            api_visibility="private",
            concurrency_limit=CONCURRENCY,
            concurrency_id="sample",
        )
    return demo


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Gradio demo of a ddpm-hf model.")
    parser.add_argument("--model", type=str, default=None, help="Pipeline folder or Hub id; default $DDPM_HF_MODEL.")
    parser.add_argument("--host", type=str, default=None, help="Server address; default Gradio's (127.0.0.1).")
    parser.add_argument("--port", type=int, default=None, help="Server port; default Gradio's (7860).")
    return parser.parse_args(argv)


def main(args):
    model = resolve_model(args.model)
    demo = build_demo(load_pipeline(model), title=f"ddpm-hf: {os.path.basename(model.rstrip('/'))}")
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    demo.launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main(parse_args())
