"""The Gradio app on localhost with a tiny model: the /generate API through gradio_client, a real browser click in
headless Chromium, 20 concurrent clients, bad input refused while the app keeps serving, and where the model comes
from."""

import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet
from ddpm_hf.schedulers import make_sampler
from ddpm_hf.viz import square_grid, tensor_to_pil

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from the test server
gradio_client = pytest.importorskip("gradio_client")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "spaces_app"))
import app  # noqa: E402

NAMES = {0: "zero", 1: "one", 2: "two"}
T = 40
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def save_tiny_model(folder, num_classes=3):
    torch.manual_seed(0)
    unet = make_unet("tiny", 8, 1, num_classes)
    scheduler = ExtendedDDPMScheduler(num_train_timesteps=T)
    DDPMCFGPipeline(unet=unet, scheduler=scheduler, id2label=NAMES if num_classes else None).save_pretrained(folder)
    return str(folder)


def launch(folder):
    demo = app.build_demo(app.load_pipeline(folder))
    demo.queue(max_size=app.QUEUE_SIZE, default_concurrency_limit=app.CONCURRENCY)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return demo, url


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    demo, url = launch(save_tiny_model(tmp_path_factory.mktemp("model")))
    yield url
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
    pipe = app.load_pipeline(save_tiny_model(tmp_path / "same"))
    pipe.scheduler = make_sampler("dpm_solver++", pipe.scheduler.config)
    images = pipe(class_labels="two", batch_size=2, guidance_scale=2.0, num_inference_steps=5,
                  generator=torch.Generator().manual_seed(3), output_type="pt").images  # fmt: skip
    expected = np.asarray(square_grid(tensor_to_pil(images * 2 - 1, 32)))
    grid_path, _, _ = generate(served, "two", 2.0, 2, "DPM-Solver++", 5, 3, False)
    np.testing.assert_array_equal(np.asarray(Image.open(grid_path)), expected)


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
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_the_app_keeps_serving(served, args, message):
    with pytest.raises(gradio_client.exceptions.AppError, match=message):
        generate(served, *args)
    _, _, timing = generate(served, "one", 3.0, 1, "DDIM", 2, 0, False)
    assert "1 image(s) of class one" in timing


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
        pipe = app.load_pipeline(folder)
        pipe.scheduler = make_sampler("ddim", pipe.scheduler.config)
        images = pipe(class_labels=[[1, 3]], batch_size=2, guidance_scale=2.0, num_inference_steps=5,
                      generator=torch.Generator().manual_seed(4), output_type="pt").images  # fmt: skip
        expected = np.asarray(square_grid(tensor_to_pil(images * 2 - 1, 32)))
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
