"""Gradio demo of a ddpm-hf model: pick a class (or several labels, for a multi-label model), a guidance scale, a
sampler and a seed, and watch images appear.

    python spaces_app/app.py [--model outputs/digits] [--host 127.0.0.1] [--port 7860]

The model is the --model flag, else the DDPM_HF_MODEL environment variable, else outputs/digits (what the README's
main job writes): a saved DDPMCFGPipeline folder, or diffusers' own unconditional DDPMPipeline folder, or a Hub id of
either. The app needs only torch, diffusers and gradio: it loads the folder with plain diffusers, which runs the
pipeline and scheduler source saved in it, takes the samplers from ddpm-hf's sampler table saved there too, and only
calls the pipeline. `/generate` is also an API endpoint for gradio_client.
"""

import argparse
import asyncio
import importlib
import math
import os
import random
import signal
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import torch
from diffusers import DDPMPipeline, DiffusionPipeline
from diffusers.utils import get_class_from_dynamic_module
from PIL import Image

DEFAULT_MODEL = "outputs/digits"
# Where ddpm-hf's sampler table (pipelines/samplers.py) is found: beside the pipeline's own module (the copy a saved
# DDPMCFGPipeline folder carries), else in an installed ddpm_hf.
SAMPLER_TABLE_MODULE = "samplers"
INSTALLED_SAMPLER_TABLE = "ddpm_hf.pipelines.samplers"
SAMPLER_TABLE_PARTS = ("SAMPLERS", "make_sampler", "default_num_steps", "samplers_for")
MAX_IMAGES = 16  # per request
MAX_STEPS = 1000  # per request, and never more than the model's T
MAX_GUIDANCE = 20.0
CONCURRENCY = 2  # requests sampled at once; the others wait in the queue
QUEUE_SIZE = 64
# Gradio keeps every image it served in its cache: every 10 minutes, delete those older than 10 minutes (a client has
# long fetched them by then), and all of them when the server stops.
DELETE_CACHE = (600, 600)
UPDATE_SECONDS = 0.1  # a running request yields this often: Gradio stops it there if its client has gone
GIF_FRAMES = 30
GIF_FRAME_MS = 100
QUOTE_CHARS = 40  # error messages quote at most this much of a bad value
PROGRESS = gr.Progress()  # Gradio fills in the request's own tracker where it sees this default
DISPLAY_SIZE = 256  # grids are enlarged (nearest neighbour) to about this many pixels per image side
# The pipelines the demo serves: ddpm-hf's (classes, labels, guidance) and diffusers' unconditional DDPMPipeline.
SERVED_PIPELINES = ("DDPMCFGPipeline", "DDPMPipeline")


class SamplingStopped(Exception):
    """Raised in the sampling loop when the request that asked for it was cancelled or its client went away."""


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


def pipeline_class_name(model: str) -> str:
    """The pipeline class that the model_index.json of folder or Hub repository `model` names (read alone, before
    anything else is fetched); a folder without one is refused, saying what it holds when that is recognisable."""
    if os.path.isdir(model) and not os.path.isfile(os.path.join(model, "model_index.json")):
        holds = ""
        run_files = (os.path.join(model, "checkpoints"), os.path.join(model, "model.safetensors"))
        if any(os.path.exists(path) for path in run_files):
            holds = (
                " (a training run or checkpoint: make a pipeline of it with train_scripts/export_checkpoint.py, or "
                "wait for the run to save one)"
            )
        raise ValueError(
            f"{model} holds no model_index.json, so it is no saved pipeline{holds}; give a DDPMCFGPipeline folder "
            "(train_image.py) or a diffusers DDPMPipeline folder."
        )
    try:
        name = DiffusionPipeline.load_config(model).get("_class_name")
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot read the model_index.json of {model}: {error}") from None
    return name[-1] if isinstance(name, (list, tuple)) and name else name  # ddpm-hf folders name [module, class]


def image_size(pipe) -> tuple[int, int]:
    """(height, width) of the images `pipe` makes: its U-Net's sample_size, one side or [height, width]."""
    size = pipe.unet.config.sample_size
    sides = [size, size] if isinstance(size, int) else size
    if isinstance(sides, (list, tuple)) and len(sides) == 2 and all(is_whole_number(side, 1, 2**20) for side in sides):
        return int(sides[0]), int(sides[1])
    raise ValueError(f"The U-Net's sample_size is {quote(size)}; the demo needs one side or [height, width].")


def check_model(pipe) -> None:
    """Refuse a model the demo would serve wrongly: a U-Net that also predicts its variance, or class names that
    cannot each be picked (empty, repeated, or not one per class of the U-Net). Folders saved by older versions run
    pipeline copies that do not check these themselves."""
    config = pipe.unet.config
    out_channels = config.get("out_channels", config.in_channels)
    if out_channels != config.in_channels:
        raise ValueError(
            f"The U-Net has out_channels={out_channels} for in_channels={config.in_channels}; the demo serves "
            "U-Nets whose out_channels equal their in_channels (a learned variance is not supported)."
        )
    image_size(pipe)
    num_classes = getattr(pipe, "num_classes", None)
    if not num_classes:
        return
    names = list(pipe.id2label.values())
    if len(names) != num_classes:
        raise ValueError(
            f"id2label holds {len(names)} class name(s) and the U-Net takes {num_classes}; give one name per class."
        )
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(
                f"id2label: the name of class {index} is {quote(name)}; each class needs a name that is not empty or "
                "only spaces (an empty name reads as no class)."
            )
        if names.index(name) != index:
            raise ValueError(
                f"id2label: the name {quote(name)} is given to classes {names.index(name)} and {index}; each class "
                "needs its own name."
            )


def load_pipeline(model: str) -> DiffusionPipeline:
    """The pipeline saved in folder or Hub repository `model`, on the GPU in float16 if there is one, else on the CPU
    in float32. `trust_remote_code=True` runs the pipeline and scheduler source saved with the model. A 2D model or
    another kind of pipeline is refused with a ValueError before its weights are loaded."""
    class_name = pipeline_class_name(model)
    if class_name == "DDPM2DPipeline":
        raise ValueError(
            f"{model} is a DDPM2DPipeline, a 2D point model (train_2d.py); the demo shows image models: a "
            "DDPMCFGPipeline folder (train_image.py) or a diffusers DDPMPipeline folder."
        )
    if class_name not in SERVED_PIPELINES:
        raise ValueError(f"{model} holds a {class_name}; the demo serves {list(SERVED_PIPELINES)} folders.")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    pipe = DiffusionPipeline.from_pretrained(model, trust_remote_code=True)
    check_model(pipe)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device=device, dtype=dtype)


def sampler_table(pipe):
    """
    ddpm-hf's sampler table (the module pipelines/samplers.py): the copy saved beside a DDPMCFGPipeline folder's
    pipeline or in a DDPMPipeline folder that ddpm-hf saved, else ddpm_hf's when it is installed. None when neither is
    there (another DDPMPipeline folder served without ddpm_hf, or a folder saved before the table travelled): then the
    model's own scheduler is the one sampler.
    """
    candidates = [INSTALLED_SAMPLER_TABLE]
    if hasattr(pipe, "num_classes"):  # a DDPMCFGPipeline: its module's folder holds the table
        candidates.insert(0, f"{type(pipe).__module__.rpartition('.')[0]}.{SAMPLER_TABLE_MODULE}")
    else:  # diffusers' DDPMPipeline, saved by ddpm-hf with the table beside model_index.json
        try:
            copy = get_class_from_dynamic_module(
                pipe.name_or_path, f"{SAMPLER_TABLE_MODULE}.py", class_name="Sampler", trust_remote_code=True
            )
            candidates.insert(0, copy.__module__)
        except Exception:  # noqa: BLE001 - no table there (missing file, a Hub error, another module): it is optional
            pass  # then ddpm_hf's, else the model's own scheduler
    for name in candidates:
        try:
            table = importlib.import_module(name)
        except ImportError:
            continue
        if all(hasattr(table, part) for part in SAMPLER_TABLE_PARTS):
            return table
    return None


def report_each_step(scheduler, on_step) -> None:
    """Make `scheduler.step` call `on_step(None, step_index, timestep, {"sample": x_t after the step})` after each
    step, as a DDPMCFGPipeline's callback_on_step_end is called: diffusers' DDPMPipeline takes no callback, and each
    request has a scheduler of its own."""
    step, step_index = scheduler.step, [0]

    def reporting_step(model_output, timestep, sample, *args, **kwargs):
        output = step(model_output, timestep, sample, *args, **kwargs)
        on_step(None, step_index[0], timestep, {"sample": output.prev_sample})
        step_index[0] += 1
        return output

    scheduler.step = reporting_step


def quote(value) -> str:
    """`repr(value)`, cut to QUOTE_CHARS characters, so that a message names a bad value without echoing all of it."""
    try:
        text = repr(value)
    except ValueError:  # an integer with more digits than Python converts to text
        return f"an integer of {value.bit_length()} bits"
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + "..."


def refuse(message: str) -> gr.Error:
    """The error that refuses bad input: shown to the user, kept out of the server log."""
    return gr.Error(message, print_exception=False)


def is_whole_number(value, low: int, high: int) -> bool:
    """Whether `value` is a whole number in low..high: NaN, infinities and booleans are not."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def image_grid(samples: torch.Tensor, upscale: int, padding: int = 2) -> Image.Image:
    """(N, C, H, W) images in [-1, 1] tiled in ceil(sqrt(N)) columns, each enlarged `upscale` times (nearest
    neighbour), `padding` grey pixels between and around them; empty cells stay grey."""
    pixels = ((samples.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    pixels = pixels.repeat_interleave(upscale, dim=2).repeat_interleave(upscale, dim=3)
    count, channels, height, width = pixels.shape
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    grid = torch.full(
        (channels, rows * height + (rows + 1) * padding, cols * width + (cols + 1) * padding), 128, dtype=torch.uint8
    )
    for index, image in enumerate(pixels):
        row, col = divmod(index, cols)
        top, left = padding + row * (height + padding), padding + col * (width + padding)
        grid[:, top : top + height, left : left + width] = image
    return Image.fromarray(grid[0].numpy() if channels == 1 else grid.permute(1, 2, 0).numpy())


def save_gif(frames: list[Image.Image], path: str) -> None:
    """A looping GIF of `frames` that holds the last one longer."""
    durations = [GIF_FRAME_MS] * (len(frames) - 1) + [GIF_FRAME_MS * 15]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)


class ServedModel:
    """
    The pipeline the demo serves (a DDPMCFGPipeline or diffusers' DDPMPipeline, as `load_pipeline` gives it), what
    its controls offer (classes or labels, samplers, steps), the checks of a request and the sampling of one.

    Sampling runs on `sampling_threads`, at most CONCURRENCY requests at a time, even while a stopped request finishes
    its last step; `generate` waits for its request's thread and stops it when the request is cancelled or its client
    goes away.
    """

    def __init__(self, pipe):
        self.pipe = pipe
        self.takes_labels = hasattr(pipe, "num_classes")  # DDPMCFGPipeline; diffusers' DDPMPipeline is unconditional
        self.class_names = list(pipe.id2label.values()) if self.takes_labels and pipe.num_classes else []  # id order
        self.multi_label = self.takes_labels and pipe.is_multi_label
        self.table = sampler_table(pipe)
        self.num_train_timesteps = pipe.scheduler.config.num_train_timesteps
        self.max_steps = min(MAX_STEPS, self.num_train_timesteps)
        # sampler title -> name in the table (None: the model's own scheduler, when there is no table)
        if self.table is None:
            self.sampler_names = {"DDPM": None}
        else:
            names = self.table.samplers_for(pipe.scheduler.config)
            self.sampler_names = {self.table.SAMPLERS[name].title: name for name in names}
        self.samplers = list(self.sampler_names)
        self.height, self.width = image_size(pipe)
        self.upscale = max(1, DISPLAY_SIZE // max(self.height, self.width))
        self.sampling_threads = ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="ddpm-hf-sampling")

    @property
    def kind(self) -> str:
        return "Multi-label" if self.multi_label else "Class-conditional" if self.class_names else "Unconditional"

    def default_steps(self, sampler: str) -> int:
        """The usual number of steps of `sampler` (its title) for this model, within the demo's limit."""
        name = self.sampler_names[sampler]
        steps = (
            self.num_train_timesteps if name is None else self.table.default_num_steps(name, self.num_train_timesteps)
        )
        return min(steps, self.max_steps)

    def make_scheduler(self, sampler: str):
        """A new scheduler of `sampler` (its title), built from the model's own scheduler."""
        scheduler, name = self.pipe.scheduler, self.sampler_names[sampler]
        if name is None:
            return type(scheduler).from_config(scheduler.config)
        return self.table.make_sampler(name, scheduler.config, type(scheduler))

    def selected_labels(self, class_name) -> list:
        """A multi-label model's labels from the multi-select (a list) or the API (names separated by commas)."""
        if isinstance(class_name, str):
            return [name.strip() for name in class_name.split(",") if name.strip()]
        return list(class_name or [])

    def check(self, class_name, guidance_scale, num_images, sampler, num_steps, seed) -> None:
        """Refuse a request's bad values with a message that names the field and what is allowed."""
        class_names = self.class_names
        if self.multi_label:
            labels = self.selected_labels(class_name)
            unknown = [label for label in labels if label not in class_names]
            if unknown or not labels or len(set(labels)) != len(labels):
                raise refuse(
                    f"Labels {quote(labels)}: pick one or more labels, each once, from {class_names} (the API takes "
                    "them separated by commas)."
                )
        elif class_names and class_name not in class_names:
            raise refuse(f"Unknown class {quote(class_name)}; choose one of {class_names}.")
        if not class_names and class_name not in (None, ""):
            raise refuse("This model is unconditional; leave the class empty.")
        if (
            not isinstance(guidance_scale, (int, float))
            or isinstance(guidance_scale, bool)
            or not 0 <= guidance_scale <= MAX_GUIDANCE  # false for NaN too
        ):
            raise refuse(f"Guidance scale must be between 0 and {MAX_GUIDANCE}, got {quote(guidance_scale)}.")
        if not is_whole_number(num_images, 1, MAX_IMAGES):
            raise refuse(f"Number of images must be a whole number from 1 to {MAX_IMAGES}, got {quote(num_images)}.")
        if sampler not in self.samplers:
            if self.table is not None and sampler in [entry.title for entry in self.table.SAMPLERS.values()]:
                raise refuse(
                    f"This model predicts the posterior mean, which only the DDPM sampler can step; got {sampler}."
                )
            raise refuse(f"Unknown sampler {quote(sampler)}; choose one of {self.samplers}.")
        if not is_whole_number(num_steps, 1, self.max_steps):
            raise refuse(f"Steps must be a whole number from 1 to {self.max_steps}, got {quote(num_steps)}.")
        if not is_whole_number(seed, 0, 2**63 - 1):
            raise refuse(f"Seed must be a whole number from 0 to 2**63 - 1, got {quote(seed)}.")

    def sample(self, request: dict, on_step) -> torch.Tensor:
        """The images of a checked request, (N, C, H, W) in [0, 1], with `on_step` called after every step. A pipeline
        per request: schedulers keep per-call state, the U-Net weights are shared."""
        scheduler = self.make_scheduler(request["sampler"])
        generator = torch.Generator().manual_seed(request["seed"])  # on the CPU: the same noise on every device
        call = dict(batch_size=request["num_images"], num_inference_steps=request["num_steps"], generator=generator)
        if not self.takes_labels:  # diffusers' DDPMPipeline: no labels, no guidance, images as (N, H, W, C) arrays
            pipe = DDPMPipeline(unet=self.pipe.unet, scheduler=scheduler)
            pipe.set_progress_bar_config(disable=True)
            report_each_step(pipe.scheduler, on_step)
            images = pipe(**call, output_type="np").images
            return torch.from_numpy(images).permute(0, 3, 1, 2)
        pipe = type(self.pipe)(unet=self.pipe.unet, scheduler=scheduler, id2label=self.pipe.id2label)
        pipe.set_progress_bar_config(disable=True)
        class_labels = None
        if self.class_names:  # a multi-label model: one condition, the selected labels, for every image
            class_labels = [request["labels"]] if self.multi_label else request["class_name"]
        return pipe(
            class_labels=class_labels,
            guidance_scale=float(request["guidance_scale"]),
            output_type="pt",
            callback_on_step_end=on_step,
            **call,
        ).images

    async def generate(
        self, class_name, guidance_scale, num_images, sampler, num_steps, seed, random_seed, progress=PROGRESS
    ):
        """Sample in a worker thread while this generator waits for it, yielding to Gradio every UPDATE_SECONDS. A
        cancelled request (its task is cancelled) or one whose client went away (Gradio closes the generator at the
        next yield) sets `stop`, and the worker stops at the end of its current step. The GIF's temporary folder goes
        when Gradio asks for the item after the last one, by which time it has copied the GIF into its cache, or when
        it closes the generator."""
        self.check(class_name, guidance_scale, num_images, sampler, num_steps, seed)
        if random_seed:
            seed = random.randrange(2**31)
        request = dict(class_name=class_name, guidance_scale=guidance_scale, num_images=int(num_images),
                       sampler=sampler, num_steps=int(num_steps), seed=int(seed))  # fmt: skip
        if self.multi_label:
            request["labels"] = self.selected_labels(class_name)
            class_name = ", ".join(request["labels"])
        frames, keep_every = [], max(1, request["num_steps"] // GIF_FRAMES)
        steps_done, stop = [0], threading.Event()

        def on_step(_, step_index, timestep, callback_kwargs):
            if stop.is_set():
                raise SamplingStopped()
            progress((step_index + 1, request["num_steps"]), desc="Sampling", unit="steps")
            if step_index % keep_every == 0 or step_index == request["num_steps"] - 1:
                frames.append(image_grid(callback_kwargs["sample"], self.upscale))
            steps_done[0] = step_index + 1
            return {}

        def work(gif_path):
            start = time.perf_counter()
            try:
                images = self.sample(request, on_step)
            except SamplingStopped:
                return None
            seconds = time.perf_counter() - start
            save_gif(frames, gif_path)
            return image_grid(images * 2 - 1, self.upscale), seconds

        with tempfile.TemporaryDirectory(prefix="ddpm_hf_space_", ignore_cleanup_errors=True) as folder:
            gif_path = os.path.join(folder, "denoising.gif")
            running = asyncio.get_running_loop().run_in_executor(self.sampling_threads, work, gif_path)
            try:
                while not (await asyncio.wait({running}, timeout=UPDATE_SECONDS))[0]:
                    # plain values: an update such as gr.skip() would make Gradio build new components every time
                    yield None, None, f"Sampling: step {steps_done[0]} of {request['num_steps']}"
                grid, seconds = running.result()  # raises what the worker raised
                what = (
                    f"image(s) of {'labels' if self.multi_label else 'class'} {class_name}"
                    if class_name
                    else "image(s)"
                )
                summary = (
                    f"{request['num_images']} {what}, {sampler} {request['num_steps']} steps, guidance "
                    f"{guidance_scale:g}, seed {request['seed']}"
                )
                yield grid, gif_path, f"{summary}: {seconds:.2f} s"
            finally:
                stop.set()


def build_demo(pipe, title: str = "ddpm-hf") -> gr.Blocks:
    """The Blocks app around `pipe` (a DDPMCFGPipeline or diffusers' DDPMPipeline, as `load_pipeline` gives it); the
    caller queues and launches it (see `main`)."""
    model = ServedModel(pipe)
    class_names, multi_label, samplers = model.class_names, model.multi_label, model.samplers
    with gr.Blocks(title=title, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(
            f"# {title}\n{model.kind} DDPM, {model.width}x{model.height} images. "
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
                sampler = gr.Radio(samplers, value=samplers[-1], label="Sampler")
                num_steps = gr.Slider(
                    1, model.max_steps, value=model.default_steps(samplers[-1]), step=1, label="Steps"
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
            lambda name: gr.update(value=model.default_steps(name)),
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
        sampling = dict(concurrency_limit=CONCURRENCY, concurrency_id="sample")
        api_trigger.click(model.generate, api_inputs, outputs, api_name="generate", **sampling)
        ui_inputs = [class_name, guidance_scale, num_images, sampler, num_steps, seed, random_seed]
        button.click(model.generate, ui_inputs, outputs, api_visibility="private", **sampling)
    return demo


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Gradio demo of a ddpm-hf model.")
    parser.add_argument("--model", type=str, default=None, help="Pipeline folder or Hub id; default $DDPM_HF_MODEL.")
    parser.add_argument("--host", type=str, default=None, help="Server address; default Gradio's (127.0.0.1).")
    parser.add_argument("--port", type=int, default=None, help="Server port; default Gradio's (7860).")
    return parser.parse_args(argv)


def main(args):
    model = resolve_model(args.model)
    try:
        pipe = load_pipeline(model)
    except ValueError as error:  # a model the demo cannot serve: say why, without a traceback
        raise SystemExit(str(error)) from None
    demo = build_demo(pipe, title=f"ddpm-hf: {os.path.basename(model.rstrip('/'))}")
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    # A container is stopped with SIGTERM: stop as on Ctrl+C, so that Gradio closes the server and deletes its cache.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    demo.launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main(parse_args())
