"""Latency of the Gradio app under concurrent clients, and a screenshot of it in headless Chromium.

    python benchmarks/bench_space.py --model outputs/digits --clients 20 --screenshot docs/space.png

Launches spaces_app/app.py's demo on localhost with its own queue settings, sends --clients simultaneous /generate
requests through gradio_client (one client object each), and reports every request's latency (p50, p95, max) and
failures. With --screenshot, opens the app in Debian's chromium (selenium, /usr/bin/chromedriver), clicks Generate
and saves the page once the images are shown. Writes JSON (--output) and prints a summary.
"""

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spaces_app"))

import app  # noqa: E402
import gradio  # noqa: E402
from gradio_client import Client  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Concurrent-client latency of the Gradio app.")
    parser.add_argument("--model", type=str, default="outputs/digits", help="Pipeline folder or Hub id.")
    parser.add_argument("--clients", type=int, default=20, help="Simultaneous /generate requests.")
    parser.add_argument("--num_images", type=int, default=4, help="Images per request.")
    parser.add_argument("--sampler", type=str, default="DPM-Solver++", choices=list(app.SAMPLERS))
    parser.add_argument("--num_steps", type=int, default=20, help="Sampling steps per request.")
    parser.add_argument("--guidance_scale", type=float, default=3.0, help="Guidance scale s.")
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


def main(args):
    pipe = app.load_pipeline(args.model)
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
            Client(url, verbose=False).predict(
                class_names[index % len(class_names)], args.guidance_scale, args.num_images, args.sampler,
                args.num_steps, index, False, api_name="/generate",
            )  # fmt: skip
            return time.perf_counter() - start, None
        except Exception as error:  # a failed request is a result to report, not a crash
            return time.perf_counter() - start, repr(error)

    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            results = list(pool.map(one_client, range(args.clients)))
        wall = time.perf_counter() - start
        if args.screenshot:
            take_screenshot(url, args.screenshot)
    finally:
        demo.close()
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
    }
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(
        f"{report['completed']}/{args.clients} completed, {report['failed']} failed in {report['wall_seconds']} s; "
        f"latency p50 {report['latency_p50_seconds']} s, p95 {report['latency_p95_seconds']} s, "
        f"max {report['latency_max_seconds']} s"
    )
    return report


if __name__ == "__main__":
    main(parse_args())
