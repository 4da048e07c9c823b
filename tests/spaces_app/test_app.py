"""The Gradio app on localhost with a tiny model: the /generate API through gradio_client, a real browser click in
headless Chromium, 20 concurrent clients, bad input refused while the app keeps serving, cancelled and abandoned
requests stopping, temporary files removed, the app running from a Hub id where ddpm_hf cannot be imported, and where
the model comes from."""

import ast
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio
import httpx
import numpy as np
import pytest
import torch
import yaml
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel
from PIL import Image

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet
from ddpm_hf.sampling import make_sampler
from ddpm_hf.training import save_pipeline_folder
from ddpm_hf.viz import square_grid, tensor_to_pil

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from the test server
gradio_client = pytest.importorskip("gradio_client")
from gradio_client.utils import Status  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "spaces_app"))
import app  # noqa: E402

NAMES = {0: "zero", 1: "one", 2: "two"}
T = 40
LONG_T = 1000  # a model whose full-length request lasts long enough to be stopped midway
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


# Run in a fresh interpreter in which ddpm_hf (and our pipelines package) cannot be imported.
WITHOUT_DDPM_HF = """
import sys
sys.modules["ddpm_hf"] = None
sys.modules["pipelines"] = None
"""


def save_tiny_model(folder, num_classes=3, num_train_timesteps=T, prediction_type="epsilon"):
    torch.manual_seed(0)
    unet = make_unet("tiny", 8, 1, num_classes)
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=num_train_timesteps, prediction_type=prediction_type)
    DDPMCFGPipeline(unet=unet, scheduler=scheduler, id2label=NAMES if num_classes else None).save_pretrained(folder)
    return str(folder)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(folder_or_pipe):
    pipe = app.load_pipeline(folder_or_pipe) if isinstance(folder_or_pipe, str) else folder_or_pipe
    demo = app.build_demo(pipe)
    demo.queue(max_size=app.QUEUE_SIZE, default_concurrency_limit=app.CONCURRENCY)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    return demo, url


def expected_grid(folder, sampler, **call_kwargs):
    """The grid the app should show, from ddpm_hf's own pipeline and grid code (not the app's)."""
    pipe = DDPMCFGPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = make_sampler(sampler, pipe.scheduler.config)
    images = pipe(output_type="pt", **call_kwargs).images
    return np.asarray(square_grid(tensor_to_pil(images * 2 - 1, 256 // pipe.unet.config.sample_size)))


def files_under(folder) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in Path(folder).rglob("*") if path.is_file())


def wait_until_idle(forwards, quiet_seconds=1.0, timeout=120):
    """Wait until no U-Net forward pass has been recorded for `quiet_seconds`; return the number recorded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = len(forwards)
        time.sleep(quiet_seconds)
        if len(forwards) == count:
            return count
    return len(forwards)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    demo, url = launch(save_tiny_model(tmp_path_factory.mktemp("model")))
    yield url
    demo.close()


@pytest.fixture(scope="module")
def long_served(tmp_path_factory):
    """A server for a model with T = 1000, and the times of its U-Net's forward passes (one per sampling step)."""
    pipe = app.load_pipeline(save_tiny_model(tmp_path_factory.mktemp("long"), num_train_timesteps=LONG_T))
    forwards = []
    pipe.unet.register_forward_hook(lambda *_: forwards.append(time.monotonic()))
    demo, url = launch(pipe)
    yield url, forwards
    demo.close()


def generate(url, *args):
    return gradio_client.Client(url, verbose=False).predict(*args, api_name="/generate")


def test_api_returns_a_grid_an_animation_and_the_time(served):
    grid_path, gif_path, timing = generate(served, "one", 3.0, 4, "DDIM", 10, 7, False)
    with Image.open(grid_path) as grid:
        # 4 images of 8x8 enlarged 32x (256 px) in a 2x2 grid with 2 px grey padding
        assert grid.size == (2 * 256 + 3 * 2, 2 * 256 + 3 * 2) and grid.mode == "L"
        pixels = np.asarray(grid)
    assert pixels.std() > 10  # an image, not a blank
    with Image.open(gif_path) as gif:
        assert gif.n_frames == 10 and gif.size == (518, 518)
    assert timing.startswith("4 image(s) of class one, DDIM 10 steps, guidance 3, seed 7: ") and timing.endswith(" s")
    again_path, _, _ = generate(served, "one", 3.0, 4, "DDIM", 10, 7, False)
    assert np.array_equal(np.asarray(Image.open(again_path)), pixels)  # same seed, same images
    other_path, _, _ = generate(served, "one", 3.0, 4, "DDIM", 10, 8, False)
    assert not np.array_equal(np.asarray(Image.open(other_path)), pixels)


def test_api_images_are_the_pipelines_images(served, tmp_path):
    folder = save_tiny_model(tmp_path / "same")
    expected = expected_grid(folder, "dpm_solver++", class_labels="two", batch_size=2, guidance_scale=2.0,
                             num_inference_steps=5, generator=torch.Generator().manual_seed(3))  # fmt: skip
    grid_path, _, _ = generate(served, "two", 2.0, 2, "DPM-Solver++", 5, 3, False)
    np.testing.assert_array_equal(np.asarray(Image.open(grid_path)), expected)


def test_the_app_loads_the_folder_with_plain_diffusers_on_the_gpu_in_float16_else_the_cpu_in_float32(tmp_path):
    pipe = app.load_pipeline(save_tiny_model(tmp_path / "model"))
    # the pipeline and scheduler classes are the source copies saved in the folder, not ddpm_hf's
    assert type(pipe).__module__ == "diffusers_modules.local.pipeline_ddpm_cfg"
    assert type(pipe.scheduler).__module__ == "diffusers_modules.local.scheduling_ddpm_ext"
    if torch.cuda.is_available():
        assert pipe.unet.device.type == "cuda" and pipe.unet.dtype == torch.float16
    else:
        assert pipe.unet.device.type == "cpu" and pipe.unet.dtype == torch.float32
    # the samplers come from the table saved in the folder beside the pipeline (pipelines/samplers.py)
    assert app.sampler_table(pipe).__name__ == "diffusers_modules.local.samplers"
    model = app.ServedModel(pipe)
    assert {name: type(model.make_scheduler(name)).__name__ for name in model.samplers} == {
        "DDPM": "ExtendedDDPMScheduler", "DDIM": "DDIMScheduler", "DPM-Solver++": "DPMSolverMultistepScheduler"
    }  # fmt: skip
    assert type(model.make_scheduler("DDPM")).__module__ == "diffusers_modules.local.scheduling_ddpm_ext"
    assert model.make_scheduler("DDIM").config.clip_sample is False
    assert model.make_scheduler("DPM-Solver++").config.algorithm_type == "dpmsolver++"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the app's GPU path: float16 on CUDA")
def test_generate_on_the_gpu_in_float16_gives_the_float32_pipelines_images(served, tmp_path):
    # the app serves the model on CUDA in float16; the expected grid: ddpm_hf's pipeline on the CPU in float32
    folder = save_tiny_model(tmp_path / "same")
    expected = expected_grid(folder, "dpm_solver++", class_labels="two", batch_size=2, guidance_scale=2.0,
                             num_inference_steps=5, generator=torch.Generator().manual_seed(3))  # fmt: skip
    grid_path, _, timing = generate(served, "two", 2.0, 2, "DPM-Solver++", 5, 3, False)
    difference = np.abs(np.asarray(Image.open(grid_path)).astype(int) - expected.astype(int))
    print(f"float16 on CUDA against float32 on the CPU: mean {difference.mean():.3f}, max {difference.max()} levels")
    # float16 keeps 11 bits (relative rounding 2**-11, 0.12 of a level at full scale) per operation: a few levels at
    # most after the U-Net's layers and 5 steps, against differences of tens of levels between other samples
    assert difference.mean() < 0.5 and difference.max() <= 6, timing


def test_random_seed_is_reported(served):
    _, _, timing = generate(served, "zero", 1.0, 1, "DDPM", T, 0, True)
    seed = int(timing.split("seed ")[1].split(":")[0])
    assert 0 <= seed < 2**31 and f"DDPM {T} steps" in timing


@pytest.mark.parametrize(
    "args, message",
    [
        (("seven", 3.0, 1, "DDIM", 5, 0, False), r"Unknown class 'seven'; choose one of \['zero', 'one', 'two'\]"),
        (("3", 3.0, 1, "DDIM", 5, 0, False), "Unknown class '3'"),
        (("one", 3.0, 1, "DDIM", T + 1, 0, False), f"Steps must be a whole number from 1 to {T}, got {T + 1}"),
        (("one", -1.0, 1, "DDIM", 5, 0, False), "Guidance scale must be between 0 and 20.0, got -1.0"),
        (("one", 3.0, 10_000, "DDIM", 5, 0, False), "Number of images must be a whole number from 1 to 16, got 10000"),
        (("one", 3.0, 0, "DDIM", 5, 0, False), "Number of images must be a whole number from 1 to 16, got 0"),
        (
            ("one", 3.0, 1, "Euler", 5, 0, False),
            r"Unknown sampler 'Euler'; choose one of \['DDPM', 'DDIM', 'DPM-Solver",
        ),
        (("one", 3.0, 1, "DDIM", 5, -1, False), "Seed must be a whole number"),
        (("one", 3.0, 1.5, "DDIM", 5, 0, False), "Number of images must be a whole number from 1 to 16, got 1.5"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_the_app_keeps_serving(served, args, message):
    with pytest.raises(gradio_client.exceptions.AppError, match=message):
        generate(served, *args)
    _, _, timing = generate(served, "one", 3.0, 1, "DDIM", 2, 0, False)
    assert "1 image(s) of class one" in timing


def generate_from_json(url, arguments: str) -> dict:
    """Send /generate's arguments as JSON text through Gradio's REST route (gradio_client refuses to send NaN and
    Infinity, which JSON parsers accept) and return the error event's payload, or {} if there was none."""
    response = httpx.post(
        f"{url}gradio_api/call/generate",
        content=f'{{"data": {arguments}}}',
        headers={"content-type": "application/json"},
    )
    events = httpx.get(f"{url}gradio_api/call/generate/{response.json()['event_id']}", timeout=120).text
    match = re.search(r"^event: error\ndata: (.*)$", events, flags=re.MULTILINE)
    return json.loads(match.group(1)) if match else {}


@pytest.mark.parametrize(
    "arguments, message",
    [
        ('["one", NaN, 1, "DDIM", 5, 0, false]', "Guidance scale must be between 0 and 20.0, got nan."),
        ('["one", 3.0, NaN, "DDIM", 5, 0, false]', "Number of images must be a whole number from 1 to 16, got nan."),
        (
            '["one", 3.0, Infinity, "DDIM", 5, 0, false]',
            "Number of images must be a whole number from 1 to 16, got inf.",
        ),
        ('["one", 3.0, 1, "DDIM", NaN, 0, false]', f"Steps must be a whole number from 1 to {T}, got nan."),
        ('["one", 3.0, 1, "DDIM", -Infinity, 0, false]', f"Steps must be a whole number from 1 to {T}, got -inf."),
        ('["one", 3.0, 1, "DDIM", 5, NaN, false]', "Seed must be a whole number from 0 to 2**63 - 1, got nan."),
        ('["one", 3.0, 1, "DDIM", 5, 1e400, false]', "Seed must be a whole number from 0 to 2**63 - 1, got inf."),
    ],
)
def test_not_a_number_and_infinities_are_refused_with_a_clear_message(served, arguments, message):
    assert generate_from_json(served, arguments).get("error") == message
    assert generate_from_json(served, '["one", 3.0, 1, "DDIM", 2, 0, false]') == {}  # and the app keeps serving


@pytest.mark.parametrize("field", ["class_name", "sampler"])
def test_a_huge_bad_value_is_quoted_by_a_short_prefix_only(served, field):
    huge = "x" * 1_000_000
    args = {"class_name": "one", "guidance_scale": 3.0, "num_images": 1, "sampler": "DDIM", "num_steps": 5, "seed": 0}
    args[field] = huge
    with pytest.raises(gradio_client.exceptions.AppError) as error:
        generate(served, *args.values(), False)
    message = str(error.value)
    prefix = "x" * (app.QUOTE_CHARS - 1)  # repr's opening quote takes one of the characters
    assert f"'{prefix}..." in message and len(message) < 300, message[:300]


def test_twenty_concurrent_clients_all_get_their_images(served):
    def one_client(index):
        start = time.perf_counter()
        grid_path, _, timing = generate(served, NAMES[index % 3], 3.0, 2, "DDIM", 10, index, False)
        return time.perf_counter() - start, Image.open(grid_path).size, timing

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one_client, range(20)))
    assert len(results) == 20
    assert all(size == (2 * 256 + 3 * 2, 256 + 2 * 2) for _, size, _ in results)
    assert [timing.split("seed ")[1].split(":")[0] for _, _, timing in results] == [str(i) for i in range(20)]


def test_a_cancelled_request_stops_sampling_within_a_step(long_served):
    url, forwards = long_served
    client = gradio_client.Client(url, verbose=False)
    before = len(forwards)
    job = client.submit("one", 3.0, app.MAX_IMAGES, "DDPM", LONG_T, 0, False, api_name="/generate")
    deadline = time.monotonic() + 120
    while len(forwards) < before + 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(forwards) >= before + 3, "sampling did not start"
    # the client names the request in its cancel only once it has read the request's id from the server, which a
    # loaded machine may not have let it do by the time the server samples: wait until the client sees it running
    running = (Status.PROCESSING, Status.PROGRESS, Status.ITERATING)
    while job.status().code not in running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.status().code in running, job.status()
    job.cancel()  # returns once the server has cancelled the request
    at_cancel = len(forwards)
    settled = wait_until_idle(forwards)
    # the step under way when the cancel arrived may finish its U-Net pass; no later step starts
    assert settled - at_cancel <= 1, f"{settled - at_cancel} steps after the cancel"
    assert settled - before < LONG_T
    _, _, timing = client.predict("one", 3.0, 1, "DDIM", 2, 0, False, api_name="/generate")
    assert timing.startswith("1 image(s) of class one, DDIM 2 steps")


def test_a_request_whose_client_goes_away_stops_sampling(long_served, tmp_path):
    url, forwards = long_served
    # The client says when it has heard that its request started: from then on Gradio follows its connection. (A
    # client that dies before it listens at all cannot be told apart from a slow one; its request runs out.)
    client_script = textwrap.dedent(f"""
        import time
        from gradio_client import Client
        from gradio_client.utils import Status
        job = Client({url!r}, verbose=False).submit("one", 3.0, {app.MAX_IMAGES}, "DDPM", {LONG_T}, 0, False,
                                                    api_name="/generate")
        while job.status().code < Status.PROCESSING:  # then PROGRESS and ITERATING
            time.sleep(0.01)
        print("listening", flush=True)
        time.sleep(600)
    """)
    before = len(forwards)
    client = subprocess.Popen(
        [sys.executable, "-c", client_script],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert select.select([client.stdout], [], [], 120)[0] and client.stdout.readline() == "listening\n"
    finally:
        client.kill()  # the connection closes as when a browser tab is closed or a client crashes
        client.wait()
    gone = time.monotonic()
    settled = wait_until_idle(forwards)
    # Gradio notices the closed connection at the request's next update (every UPDATE_SECONDS; 0.04-0.12 s measured
    # here), far sooner than the remaining steps would take; 5 s allows for a loaded machine
    assert forwards[-1] - gone < 5.0 and settled - before < LONG_T, (forwards[-1] - gone, settled - before)


def test_requests_leave_no_temporary_files_and_stopping_empties_gradios_cache(tmp_path, monkeypatch):
    temp, cache = tmp_path / "tmp", tmp_path / "gradio_cache"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where the app writes each request's GIF
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))  # where Gradio keeps what it serves
    demo, url = launch(save_tiny_model(tmp_path / "model"))
    try:
        client = gradio_client.Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        for seed in range(5):
            client.predict("one", 3.0, 2, "DDIM", 5, seed, False, api_name="/generate")
        assert files_under(temp) == []
        served_files = files_under(cache)  # the grids and GIFs the client fetched, kept for a while
        assert 0 < len(served_files) <= 2 * 5 and all(re.search(r"\.(png|gif)$", name) for name in served_files)
    finally:
        demo.close()
    assert files_under(cache) == [] and files_under(temp) == []


@pytest.mark.parametrize("num_train_timesteps", [1, 2, 20, 39, 40, 41, 100, 400, 1000, 1500])
def test_each_sampler_starts_at_its_usual_steps_within_the_demos_limit(tmp_path, num_train_timesteps):
    model = app.ServedModel(
        app.load_pipeline(save_tiny_model(tmp_path / "model", num_train_timesteps=num_train_timesteps))
    )
    limit = min(num_train_timesteps, app.MAX_STEPS)
    # DDPM all T steps, DDIM 50, DPM-Solver++ 20 but at most T // 2 (T = 20 with 20 steps repeats timestep 10 and
    # divides by zero); never more than the Steps slider allows
    expected = {"DDPM": limit, "DDIM": min(50, limit), "DPM-Solver++": min(20, max(num_train_timesteps // 2, 1))}
    assert {name: model.default_steps(name) for name in model.samplers} == expected


def test_without_a_sampler_table_a_diffusers_ddpm_pipeline_offers_its_own_scheduler(tmp_path, monkeypatch):
    # a diffusers DDPMPipeline folder carries no sampler table; where ddpm_hf is not installed either, the demo
    # samples with the folder's own scheduler, all T steps
    monkeypatch.setitem(sys.modules, app.INSTALLED_SAMPLER_TABLE, None)  # import ddpm_hf.pipelines.samplers fails
    pipe = app.load_pipeline(save_diffusers_ddpm(tmp_path / "ddpm"))
    assert app.sampler_table(pipe) is None
    model = app.ServedModel(pipe)
    assert model.samplers == ["DDPM"] and model.default_steps("DDPM") == T
    assert type(model.make_scheduler("DDPM")) is DDPMScheduler
    with pytest.raises(gradio.Error, match=r"Unknown sampler 'DDIM'; choose one of \['DDPM'\]"):
        model.check("", 1.0, 1, "DDIM", 5, 0)
    images = model.sample(dict(sampler="DDPM", num_images=2, num_steps=3, seed=0), lambda *args: {})
    expected_pipe = DDPMPipeline.from_pretrained(tmp_path / "ddpm")
    expected_pipe.set_progress_bar_config(disable=True)
    expected = expected_pipe(batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=3,
                             output_type="np").images  # fmt: skip
    np.testing.assert_array_equal(images.numpy(), expected.transpose(0, 3, 1, 2))


def test_an_unconditional_run_saved_as_a_ddpm_pipeline_brings_its_sampler_table(tmp_path, monkeypatch):
    # ddpm-hf saves an unconditional model as diffusers' DDPMPipeline with the table beside model_index.json: served
    # without ddpm_hf, the demo still offers DDIM and DPM-Solver++ for it, from that copy
    monkeypatch.setitem(sys.modules, app.INSTALLED_SAMPLER_TABLE, None)
    torch.manual_seed(0)
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T)
    save_pipeline_folder(DDPMCFGPipeline(unet=make_unet("tiny", 8, 1, None), scheduler=scheduler), tmp_path / "run")
    pipe = app.load_pipeline(str(tmp_path / "run"))
    assert type(pipe) is DDPMPipeline
    assert app.sampler_table(pipe).__name__.startswith("diffusers_modules.")  # the folder's copy
    model = app.ServedModel(pipe)
    assert model.samplers == ["DDPM", "DDIM", "DPM-Solver++"]
    assert type(model.make_scheduler("DDIM")).__name__ == "DDIMScheduler"


def test_a_mean_prediction_model_offers_only_the_ddpm_sampler(tmp_path):
    demo, url = launch(save_tiny_model(tmp_path / "mean", prediction_type="mean"))
    try:
        (radio,) = [c for c in demo.config["components"] if c["type"] == "radio"]
        assert [choice[0] for choice in radio["props"]["choices"]] == ["DDPM"] and radio["props"]["value"] == "DDPM"
        with pytest.raises(gradio_client.exceptions.AppError, match="only the DDPM sampler can step; got DDIM"):
            generate(url, "one", 3.0, 1, "DDIM", 5, 0, False)
        _, _, timing = generate(url, "one", 3.0, 1, "DDPM", 5, 0, False)
        assert timing.startswith("1 image(s) of class one, DDPM 5 steps")
    finally:
        demo.close()


def test_the_space_runs_from_a_hub_id_without_ddpm_hf_and_cleans_up_when_stopped(tmp_path, fake_hub_server):
    folder = save_tiny_model(tmp_path / "model")
    files = {name: (Path(folder) / name).read_bytes() for name in files_under(folder)}
    fake_hub_server.commits.append({"repo_id": "me/tiny-space", "summary": "upload", "files": files})
    port, cache, temp = free_port(), tmp_path / "gradio_cache", tmp_path / "tmp"
    temp.mkdir()
    env = {
        **os.environ,
        **fake_hub_server.env,
        "DDPM_HF_MODEL": "me/tiny-space",
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "GRADIO_TEMP_DIR": str(cache),
        "TMPDIR": str(temp),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    script = WITHOUT_DDPM_HF + textwrap.dedent(f"""
        import runpy
        sys.argv = ["app.py", "--port", "{port}"]
        runpy.run_path({str(REPO / "spaces_app" / "app.py")!r}, run_name="__main__")
    """)
    with open(tmp_path / "app.log", "w") as log:
        server = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while server.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert server.poll() is None, (tmp_path / "app.log").read_text()[-3000:]
        grid_path, _, timing = generate(url, "two", 2.0, 2, "DPM-Solver++", 5, 3, False)
        assert timing.startswith("2 image(s) of class two, DPM-Solver++ 5 steps")
        expected = expected_grid(folder, "dpm_solver++", class_labels="two", batch_size=2, guidance_scale=2.0,
                                 num_inference_steps=5, generator=torch.Generator().manual_seed(3))  # fmt: skip
        np.testing.assert_array_equal(np.asarray(Image.open(grid_path)), expected)
        assert files_under(cache)  # served files, until the server stops
    finally:
        server.send_signal(signal.SIGTERM)  # what a container stop sends
        returncode = server.wait(timeout=60)
    log_text = (tmp_path / "app.log").read_text()
    assert returncode == 0, log_text[-3000:]
    assert "ModuleNotFoundError" not in log_text and "ImportError" not in log_text
    assert files_under(cache) == [] and not list(temp.glob("ddpm_hf_space_*"))


def test_the_space_declares_what_app_py_imports_and_the_gradio_it_was_tested_with():
    tree = ast.parse((REPO / "spaces_app" / "app.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}  # fmt: skip
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    third_party = imported - set(sys.stdlib_module_names)
    assert third_party == {"gradio", "torch", "diffusers", "PIL"}
    requirements = {}
    for line in (REPO / "spaces_app" / "requirements.txt").read_text().splitlines():
        if line.split("#")[0].strip():
            name, spec = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", line.split("#")[0].strip()).groups()
            requirements[name.lower()] = spec
    assert set(requirements) == {"gradio", "torch", "diffusers", "pillow"}
    front_matter = yaml.safe_load((REPO / "spaces_app" / "README.md").read_text().split("---")[1])
    sdk_version = str(front_matter["sdk_version"])
    assert front_matter["sdk"] == "gradio" and front_matter["app_file"] == "app.py"
    # the Space installs gradio==sdk_version; a local `pip install -r requirements.txt` gets the same one
    assert requirements["gradio"] == f"=={sdk_version}"
    pyproject = (REPO / "pyproject.toml").read_text()
    floors = re.findall(r'"gradio>=([0-9.]+)"', pyproject)
    assert len(floors) == 2 and {floor.split(".")[0] for floor in floors} == {sdk_version.split(".")[0]}
    assert gradio.__version__.split(".")[0] == sdk_version.split(".")[0]


def test_unconditional_model_hides_the_class_picker_and_samples_without_a_class(tmp_path):
    demo, url = launch(save_tiny_model(tmp_path / "uncond", num_classes=None))
    try:
        dropdowns = [c for c in demo.config["components"] if c["type"] == "dropdown"]
        assert len(dropdowns) == 1 and dropdowns[0]["props"]["visible"] is False
        _, _, timing = generate(url, "", 1.0, 3, "DDPM", 5, 0, False)
        assert timing.startswith("3 image(s), DDPM 5 steps")
        with pytest.raises(gradio_client.exceptions.AppError, match="unconditional; leave the class empty"):
            generate(url, "one", 1.0, 1, "DDPM", 5, 0, False)
    finally:
        demo.close()


def test_multi_label_model_offers_a_multi_select_and_samples_the_chosen_set(tmp_path):
    labels = ["red cube", "blue sphere", "green cylinder", "gray cube"]
    torch.manual_seed(0)
    unet = make_unet("tiny", 8, 3, len(labels), multi_label=True)
    folder = str(tmp_path / "multi")
    DDPMCFGPipeline(unet=unet, scheduler=ExtendedDDPMScheduler(num_train_timesteps=T),
                    id2label=dict(enumerate(labels))).save_pretrained(folder)  # fmt: skip
    demo, url = launch(folder)
    try:
        (dropdown,) = [c for c in demo.config["components"] if c["type"] == "dropdown"]
        assert dropdown["props"]["multiselect"] is True and dropdown["props"]["value"] == labels[:2]
        assert [choice[0] for choice in dropdown["props"]["choices"]] == labels
        grid_path, _, timing = generate(url, "blue sphere, gray cube", 2.0, 2, "DDIM", 5, 4, False)
        assert timing.startswith("2 image(s) of labels blue sphere, gray cube, DDIM 5 steps")
        # the pipeline with the same set of labels (as ids) gives the same images
        expected = expected_grid(folder, "ddim", class_labels=[[1, 3]], batch_size=2, guidance_scale=2.0,
                                 num_inference_steps=5, generator=torch.Generator().manual_seed(4))  # fmt: skip
        np.testing.assert_array_equal(np.asarray(Image.open(grid_path)), expected)
        for bad in ("", "red cube, red cube", "red cube, purple cone"):
            with pytest.raises(gradio_client.exceptions.AppError, match="pick one or more labels, each once"):
                generate(url, bad, 2.0, 1, "DDIM", 5, 0, False)
    finally:
        demo.close()


def test_model_comes_from_the_flag_then_the_environment_then_the_main_job(tmp_path, monkeypatch):
    monkeypatch.setenv("DDPM_HF_MODEL", "from/env")
    assert app.resolve_model("from/flag") == "from/flag"
    assert app.resolve_model(None) == "from/env"
    monkeypatch.delenv("DDPM_HF_MODEL")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(app, "__file__", str(tmp_path / "spaces_app" / "app.py"))
    with pytest.raises(SystemExit, match=r"No model found at outputs/digits\. Create it with `bash scripts/main.sh`"):
        app.resolve_model(None)
    save_tiny_model(tmp_path / "outputs" / "digits")
    assert app.resolve_model(None) == "outputs/digits"


def test_the_command_line_says_how_to_create_a_missing_model(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DDPM_HF_MODEL"}
    script = str(tmp_path / "app.py")
    shutil.copy(REPO / "spaces_app" / "app.py", script)  # a copy, so that no outputs/digits lies beside it
    result = subprocess.run(
        [sys.executable, script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert result.returncode == 1 and "bash scripts/main.sh" in result.stderr


def test_a_real_browser_click_shows_the_generated_image(served, tmp_path):
    if not (CHROMIUM and CHROMEDRIVER):
        missing = "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
        if os.environ.get("DDPM_HF_REQUIRE_BROWSER"):
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1100"]  # fmt: skip
    for flag in flags:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(served)
        wait = WebDriverWait(driver, 120)
        button = wait.until(lambda d: d.find_element(By.XPATH, "//button[normalize-space()='Generate']"))
        button.click()
        size = wait.until(
            lambda d: d.execute_script(
                "const img = document.querySelector('#samples img');"
                "return img && img.complete && img.naturalWidth > 0 ? [img.naturalWidth, img.naturalHeight] : null;"
            )
        )
        # the default request: 9 images of 8x8 at 32x in a 3x3 grid with 2 px padding
        assert size == [3 * 256 + 4 * 2, 3 * 256 + 4 * 2]
        timing = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#timing textarea").get_attribute("value"))
        assert "9 image(s) of class zero, DPM-Solver++ 20 steps" in timing
        screenshot = tmp_path / "app.png"
        driver.save_screenshot(str(screenshot))
        with Image.open(screenshot) as picture:
            assert picture.size[0] > 600 and np.asarray(picture.convert("L")).std() > 5
    finally:
        driver.quit()


def save_diffusers_ddpm(folder, sample_size=8, out_channels=1):
    """A tiny pipeline saved by diffusers' own DDPMPipeline (UNet2DModel, DDPMScheduler), as a Space user may have."""
    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=sample_size,
        in_channels=1,
        out_channels=out_channels,
        block_out_channels=(8, 16),
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=T)).save_pretrained(folder)
    return str(folder)


def test_a_diffusers_ddpm_pipeline_is_served_unconditionally(tmp_path):
    folder = save_diffusers_ddpm(tmp_path / "ddpm", sample_size=[8, 16])  # [height, width], as diffusers allows
    demo, url = launch(folder)
    try:
        dropdowns = [c for c in demo.config["components"] if c["type"] == "dropdown"]
        assert len(dropdowns) == 1 and dropdowns[0]["props"]["visible"] is False  # no class picker
        for sampler, scheduler, steps in (("DDPM", DDPMScheduler, 5), ("DDIM", DDIMScheduler, 4)):
            grid_path, gif_path, timing = generate(url, "", 1.0, 3, sampler, steps, 2, False)
            assert timing.startswith(f"3 image(s), {sampler} {steps} steps")
            with Image.open(gif_path) as gif:
                assert gif.n_frames == steps
            # diffusers' own DDPMPipeline with the same sampler and seed, tiled by ddpm_hf's grid code
            expected_pipe = DDPMPipeline.from_pretrained(folder)
            overrides = {"clip_sample": False} if sampler == "DDIM" else {}
            expected_pipe.scheduler = scheduler.from_config(expected_pipe.scheduler.config, **overrides)
            expected_pipe.set_progress_bar_config(disable=True)
            images = expected_pipe(batch_size=3, generator=torch.Generator().manual_seed(2), num_inference_steps=steps,
                                   output_type="np").images  # fmt: skip
            expected = square_grid(tensor_to_pil(torch.from_numpy(images).permute(0, 3, 1, 2) * 2 - 1, 256 // 16))
            assert expected.size == (2 * 256 + 3 * 2, 2 * 128 + 3 * 2)  # 8x16 images at 16x, 2 columns, 2 rows
            np.testing.assert_array_equal(np.asarray(Image.open(grid_path)), np.asarray(expected))
        with pytest.raises(gradio_client.exceptions.AppError, match="unconditional; leave the class empty"):
            generate(url, "one", 1.0, 1, "DDPM", 5, 0, False)
    finally:
        demo.close()


def save_2d_model(folder):
    from ddpm_hf import DDPM2DPipeline, MLP2DModel

    DDPM2DPipeline(model=MLP2DModel(), scheduler=ExtendedDDPMScheduler(num_train_timesteps=T)).save_pretrained(folder)
    return str(folder)


def save_other_pipeline(folder):
    save_diffusers_ddpm(folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "DDIMPipeline"}))
    return str(folder)


def save_run_in_progress(folder):
    (folder / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    return str(folder)


@pytest.mark.parametrize(
    "save, message",
    [
        (
            save_2d_model,
            r"is a DDPM2DPipeline, a 2D point model \(train_2d.py\); the demo shows image models: a DDPMCFGPipeline "
            r"folder \(train_image.py\) or a diffusers DDPMPipeline folder\.",
        ),
        (save_other_pipeline, r"holds a DDIMPipeline; the demo serves \['DDPMCFGPipeline', 'DDPMPipeline'\] folders"),
        (
            save_run_in_progress,
            r"holds no model_index.json, so it is no saved pipeline \(a training run or checkpoint: make a "
            r"pipeline of it with train_scripts/export_checkpoint.py",
        ),
        (
            lambda folder: save_diffusers_ddpm(folder, out_channels=2),
            r"The U-Net has out_channels=2 for in_channels=1; the demo serves U-Nets whose out_channels equal",
        ),
    ],
    ids=["2D model", "another pipeline", "run in progress", "learned variance"],
)
def test_models_the_demo_cannot_serve_are_refused_by_name(tmp_path, save, message):
    folder = save(tmp_path / "model")
    with pytest.raises(ValueError, match=message):
        app.load_pipeline(folder)
    # on the command line: that sentence, not a traceback
    with pytest.raises(SystemExit, match=message):
        app.main(app.parse_args(["--model", folder]))


OLD_CONSTRUCTOR = "id2label = {int(key): str(value) for key, value in id2label.items()} if id2label else None"


@pytest.mark.parametrize("copy_checks", [True, False], ids=["pipeline copy checks", "older pipeline copy"])
@pytest.mark.parametrize(
    "id2label, message",
    [
        ({"0": "", "1": "one", "2": "two"}, r"id2label: the name of class 0 is ''"),
        ({"0": "zero", "1": " ", "2": "two"}, r"id2label: the name of class 1 is ' '"),
        ({"0": "zero", "1": "one", "2": "zero"}, r"the name 'zero' is given to classes 0 and 2"),
        ({"0": "zero", "1": "one"}, r"2 .*name\(s\) and .*3"),
    ],
)
def test_class_names_that_cannot_be_picked_are_refused_when_the_model_loads(tmp_path, id2label, message, copy_checks):
    folder = Path(save_tiny_model(tmp_path / "model"))
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "id2label": id2label}))
    if not copy_checks:  # a folder saved before the pipeline checked its names: the app checks them itself
        source = (folder / "pipeline_ddpm_cfg.py").read_text()
        check = "id2label = check_id2label(id2label, self.num_classes, self.is_multi_label)"
        assert source.count(check) == 1
        (folder / "pipeline_ddpm_cfg.py").write_text(source.replace(check, OLD_CONSTRUCTOR))
    with pytest.raises(ValueError, match=message):
        app.load_pipeline(str(folder))
