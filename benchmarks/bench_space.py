"""Latency of the Gradio app under concurrent clients, the files it leaves, how fast cancelled requests stop, and a
screenshot of it in headless Chromium.

    python benchmarks/bench_space.py --model outputs/digits --clients 20 --cancel_jobs 10 --screenshot docs/space.png

Launches spaces_app/app.py's demo on localhost with its own queue settings, sends --clients simultaneous /generate
requests through gradio_client (one client object each), and reports every request's latency (p50, p95, max) and
failures. The app's temporary files and Gradio's cache are pointed at a fresh folder, whose files are counted after
the requests and again after the server has stopped. With --cancel_jobs N, N more clients each ask for the largest
request (16 images, DDPM, all steps), all are cancelled once sampling has begun, and the U-Net's forward passes (one
per sampling step) after the cancels are counted. With --screenshot, opens the app in Debian's chromium (selenium,
/usr/bin/chromedriver), clicks Generate and saves the page once the images are shown. Writes JSON (--output) and
prints a summary.
"""

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spaces_app"))

import app  # noqa: E402
import gradio  # noqa: E402
from gradio_client import Client  # noqa: E402
from gradio_client.utils import Status  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Concurrent-client latency of the Gradio app.")
    parser.add_argument("--model", type=str, default="outputs/digits", help="Pipeline folder or Hub id.")
    parser.add_argument("--clients", type=int, default=20, help="Simultaneous /generate requests.")
    parser.add_argument("--num_images", type=int, default=4, help="Images per request.")
    parser.add_argument(
        "--sampler", type=str, default="DPM-Solver++", help="A sampler the app offers: DDPM, DDIM or DPM-Solver++."
    )
    parser.add_argument("--num_steps", type=int, default=20, help="Sampling steps per request.")
    parser.add_argument("--guidance_scale", type=float, default=3.0, help="Guidance scale s.")
    parser.add_argument(
        "--cancel_jobs", type=int, default=0, help="Largest requests to submit and cancel after the latency run."
    )
    parser.add_argument("--screenshot", type=str, default=None, help="Save a browser screenshot here (PNG).")
    parser.add_argument("--output", type=str, default="bench_space.json", help="Where to write the JSON results.")
    return parser.parse_args(argv)


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def take_screenshot(url, path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1080"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 300)
        wait.until(lambda d: d.find_element(By.XPATH, "//button[normalize-space()='Generate']")).click()
        wait.until(
            lambda d: d.execute_script("const i = document.querySelector('#samples img'); return i && i.complete")
        )
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#timing textarea").get_attribute("value"))
        driver.save_screenshot(path)
    finally:
        driver.quit()


def count_left(scratch):
    """Files in Gradio's cache, and the app's temporary folders with the files in them."""
    cache_files = sum(path.is_file() for path in Path(scratch, "gradio_cache").rglob("*"))
    app_folders = list(Path(scratch, "tmp").glob("ddpm_hf_space_*"))
    app_files = sum(path.is_file() for folder in app_folders for path in folder.rglob("*"))
    return {
        "gradio_cache_files": cache_files,
        "app_temporary_folders": len(app_folders),
        "app_temporary_files": app_files,
    }


def cancel_largest_requests(url, pipe, count, forwards, downloads):
    """Submit `count` largest requests, cancel them all once sampling has begun, report the forward passes after."""
    steps = min(app.MAX_STEPS, pipe.scheduler.config.num_train_timesteps)
    label = next(iter(pipe.id2label.values())) if pipe.num_classes else ""
    before = len(forwards)
    jobs = [
        Client(url, verbose=False, download_files=downloads).submit(
            label, 3.0, app.MAX_IMAGES, "DDPM", steps, index, False, api_name="/generate"
        )
        for index in range(count)
    ]
    # every request in the queue (a job cancelled before its client has joined the queue is only cancelled on the
    # client's side), and sampling begun
    while any(job.status().code < Status.IN_QUEUE for job in jobs) or len(forwards) < before + 3:
        time.sleep(0.01)

    def cancel(job):
        try:
            job.cancel()
        except Exception as error:  # a cancel that fails is a result to report
            return repr(error)

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=count) as pool:
        cancel_errors = [error for error in pool.map(cancel, jobs) if error]
    cancelled = time.monotonic()
    at_cancel = len(forwards)
    while True:  # until no forward pass for 2 s
        seen = len(forwards)
        time.sleep(2.0)
        if len(forwards) == seen:
            break
    return {
        "cancelled_requests": count,
        "steps_per_request": steps,
        "cancel_seconds": round(cancelled - start, 2),
        "forwards_before_cancel": at_cancel - before,
        "forwards_after_cancels_returned": len(forwards) - at_cancel,
        "seconds_from_cancels_to_last_forward": round(max(forwards[-1] - cancelled, 0.0), 2),
        "cancel_errors": cancel_errors,
    }


def main(args):
    # the app's temporary files, Gradio's cache and the clients' downloads go to a fresh folder, to count what is
    # left behind; it is deleted at the end
    scratch = tempfile.mkdtemp(prefix="bench_space_")
    tempfile.tempdir = os.path.join(scratch, "tmp")
    os.makedirs(tempfile.tempdir)
    os.environ["GRADIO_TEMP_DIR"] = os.path.join(scratch, "gradio_cache")
    downloads = os.path.join(scratch, "downloads")
    pipe = app.load_pipeline(args.model)
    forwards = []
    pipe.unet.register_forward_hook(lambda *_: forwards.append(time.monotonic()))
    demo = app.build_demo(pipe, title=f"ddpm-hf: {os.path.basename(args.model.rstrip('/'))}")
    demo.queue(max_size=app.QUEUE_SIZE, default_concurrency_limit=app.CONCURRENCY)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    class_names = list(pipe.id2label.values()) if pipe.num_classes else [""]

    def one_client(index):
        start = time.perf_counter()
        try:
            Client(url, verbose=False, download_files=downloads).predict(
                class_names[index % len(class_names)], args.guidance_scale, args.num_images, args.sampler,
                args.num_steps, index, False, api_name="/generate",
            )  # fmt: skip
            return time.perf_counter() - start, None
        except Exception as error:  # a failed request is a result to report, not a crash
            return time.perf_counter() - start, repr(error)

    cancels = None
    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            results = list(pool.map(one_client, range(args.clients)))
        wall = time.perf_counter() - start
        left_after_requests = count_left(scratch)
        if args.cancel_jobs:
            cancels = cancel_largest_requests(url, pipe, args.cancel_jobs, forwards, downloads)
        if args.screenshot:
            take_screenshot(url, args.screenshot)
    finally:
        demo.close()
    time.sleep(1.0)  # the server stops in its own thread
    left_after_close = count_left(scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    latencies = [seconds for seconds, error in results if error is None]
    failures = [error for _, error in results if error is not None]
    report = {
        "command_args": vars(args),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "versions": {"gradio": gradio.__version__},
        "concurrency_limit": app.CONCURRENCY,
        "completed": len(latencies),
        "failed": len(failures),
        "failures": failures,
        "wall_seconds": round(wall, 2),
        "latency_p50_seconds": round(statistics.median(latencies), 2) if latencies else None,
        "latency_p95_seconds": round(percentile(latencies, 95), 2) if latencies else None,
        "latency_max_seconds": round(max(latencies), 2) if latencies else None,
        "left_after_requests": left_after_requests,
        "left_after_close": left_after_close,
        "cancels": cancels,
    }
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(
        f"{report['completed']}/{args.clients} completed, {report['failed']} failed in {report['wall_seconds']} s; "
        f"latency p50 {report['latency_p50_seconds']} s, p95 {report['latency_p95_seconds']} s, "
        f"max {report['latency_max_seconds']} s\nleft after the requests: {left_after_requests}\n"
        f"left after close: {left_after_close}"
    )
    if cancels:
        print(
            f"{args.cancel_jobs} largest requests cancelled in {cancels['cancel_seconds']} s: "
            f"{cancels['forwards_after_cancels_returned']} sampling steps after the cancels returned, the last "
            f"{cancels['seconds_from_cancels_to_last_forward']} s after them"
        )
    return report


if __name__ == "__main__":
    main(parse_args())
