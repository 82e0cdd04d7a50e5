"""`tfnlp bench serve`: `tfnlp serve` under load on loopback, with and without client batching.

A real server process, real HTTP clients (httpx, one per thread): `--requests` requests from
`--clients` concurrent clients, once with one text per request and once with `--batch` texts
per request. Every request carries an id; the run asserts that every id got exactly one
answer, with status 200 and one prediction per text, and reports requests/s, texts/s and the
p50/p99 latency. Bounded in count and time, and only ever aimed at 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from tfnlp.atomic import write_json
from tfnlp.bench.measure import bar_chart, machine_summary
from tfnlp.training.cluster import free_ports


def start_server(root: str | Path, *options: str, timeout: float = 120.0):
    """`tfnlp serve root [options]` on a free loopback port; returns (process, base URL) once
    it answers.

    Raises:
        RuntimeError: the server exited or did not answer within `timeout` seconds.
    """
    import httpx

    (port,) = free_ports(1)
    # A file, not a pipe: a pipe nobody reads would block a chatty server once it is full.
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed below, either way)
    process = subprocess.Popen(
        [sys.executable, "-m", "tfnlp", "serve", str(root), "--port", str(port), *options],
        stdout=subprocess.DEVNULL, stderr=log, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    base = f"http://127.0.0.1:{port}/v1/models"
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            httpx.get(base + "/", timeout=2)
            log.close()  # the server writes on through its own descriptor
            return process, base
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    process.wait()
    with log:
        log.seek(0)
        raise RuntimeError(f"tfnlp serve did not start: {log.read()[-2000:]}")


def load_run(url: str, *, requests: int, clients: int, batch: int) -> dict:
    """`requests` POSTs of `batch` texts from `clients` threads; checks every answer.

    Raises:
        AssertionError: a request failed, was answered twice or not at all, or an answer
            did not hold one prediction per text.
    """
    import httpx

    ids = iter(range(requests))
    lock = threading.Lock()
    answers: dict[int, tuple[int, int, float]] = {}
    duplicates = []

    def client():
        with httpx.Client(timeout=60) as session:
            while True:
                with lock:
                    request_id = next(ids, None)
                if request_id is None:
                    return
                texts = [f"request {request_id} text {i} :)" for i in range(batch)]
                start = time.perf_counter()
                response = session.post(url, json={"instances": texts})
                seconds = time.perf_counter() - start
                count = len(response.json().get("predictions", [])) if response.is_success else 0
                with lock:
                    if request_id in answers:
                        duplicates.append(request_id)
                    answers[request_id] = (response.status_code, count, seconds)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    wall = time.perf_counter() - start
    errors = sum(1 for status, count, _ in answers.values() if status != 200 or count != batch)
    if len(answers) != requests or errors or duplicates:
        raise AssertionError(f"{requests - len(answers)} requests lost, {errors} failed, "
                             f"{len(duplicates)} answered twice")
    latencies = np.array([seconds for _, _, seconds in answers.values()]) * 1000
    return {"requests": requests, "clients": clients, "texts_per_request": batch,
            "errors": errors, "lost": requests - len(answers), "duplicated": len(duplicates),
            "requests_per_second": requests / wall, "texts_per_second": requests * batch / wall,
            "latency_ms_p50": float(np.percentile(latencies, 50)),
            "latency_ms_p99": float(np.percentile(latencies, 99))}


def bench_serve(root: str | Path, model: str, out_dir: str | Path, *, requests: int = 2000,
                clients: int = 16, batch: int = 8) -> dict:
    """Both load runs against one `tfnlp serve` process; JSON + PNG.

    Returns:
        The report written to `bench_serve.json`.
    """
    process, base = start_server(root)
    try:
        url = f"{base}/{model}:predict"
        load_run(url, requests=clients, clients=clients, batch=1)  # warm-up: graphs traced
        runs = {"one_text_per_request": load_run(url, requests=requests, clients=clients,
                                                 batch=1),
                f"client_batch_{batch}": load_run(url, requests=requests, clients=clients,
                                                  batch=batch)}
    finally:
        process.terminate()
        process.wait(timeout=30)
    report = {"export_root": str(root), "model": model, "runs": runs,
              "machine": machine_summary()}
    out = Path(out_dir)
    write_json(out / "bench_serve.json", report)
    bar_chart(out / "bench_serve.png", f"tfnlp serve, {clients} clients, {requests} requests",
              [("texts/s", {k: r["texts_per_second"] for k, r in runs.items()}),
               ("p99 latency (ms)", {k: r["latency_ms_p99"] for k, r in runs.items()})])
    return report


def summary_lines(report: dict) -> list[str]:
    return [f"{name:<24}{r['requests_per_second']:>9,.0f} req/s{r['texts_per_second']:>9,.0f} "
            f"texts/s  p50 {r['latency_ms_p50']:.1f} ms  p99 {r['latency_ms_p99']:.1f} ms  "
            f"errors {r['errors']}, lost {r['lost']}" for name, r in report["runs"].items()]
