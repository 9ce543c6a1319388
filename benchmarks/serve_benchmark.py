"""Latency of the demo page (``heroes serve``) under a bounded local load: a fixed number of uploads, N at a time.

    python benchmarks/serve_benchmark.py --model RUN [--requests 200] [--concurrency 20] [--upload-size 224]
                                         [--out reports/benchmarks/serve-latency.json]

RUN is a run folder from ``heroes train``. The server runs in this process on a free loopback port, so nothing leaves
the machine; the uploads are pictures drawn by ``heroes.data.synthetic`` (JPEG, PNG, WebP, GIF, BMP as a scrape
mixes them). After two untimed warm-up uploads, ``--requests`` uploads go out ``--concurrency`` at a time and the
script stops; each answer is checked against what ``heroes predict`` says of the same file. Latency is measured at
the client: from sending the upload to having the answer (decoding, model, Grad-CAM, and the wait for the model lock).
"""

import argparse
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy  # noqa: E402

from heroes import machine, paths  # noqa: E402
from heroes.data.synthetic import dataset  # noqa: E402
from heroes.io import write_json  # noqa: E402
from heroes.serving import predict, serve  # noqa: E402
from heroes.reporting import run_card  # noqa: E402

DEFAULT_OUT = paths.REPORTS / "benchmarks" / "serve-latency.json"
WARM_UP = 2


def load_test(server, images, requests: int, concurrency: int) -> dict:
    """Send ``requests`` uploads of ``images`` (cycled), ``concurrency`` at a time; latencies and correct answers."""
    demo = server.demo
    found = predict.iter_predictions(demo.model, demo.class_names, [str(path) for path in images], top_k=1,
                                     progress=False)
    expected = {prediction.path: prediction.top[0] for prediction in found}
    uploads = [(path, path.read_bytes()) for path in images]
    for path, data in uploads[:WARM_UP]:  # Grad-CAM's first call traces its graph: not what a visitor waits for
        serve.upload(server.url, path.name, data)

    def send(index):
        path, data = uploads[index % len(uploads)]
        started = time.perf_counter()
        status, answer = serve.upload(server.url, path.name, data)
        seconds = time.perf_counter() - started
        label, probability = expected[str(path)]
        right = status == 200 and answer["predicted"] == label and abs(answer["probability"] - probability) < 1e-5
        return seconds, right

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(send, range(requests)))
    wall = time.perf_counter() - started
    milliseconds = 1000 * numpy.array([seconds for seconds, _ in results])
    return {
        "requests": requests, "concurrency": concurrency, "correct": sum(right for _, right in results),
        "latency_ms": {name: round(float(numpy.percentile(milliseconds, q)), 1)
                       for name, q in (("p50", 50), ("p95", 95), ("max", 100))},
        "wall_s": round(wall, 2), "uploads_per_s": round(requests / wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="run folder from heroes train")
    parser.add_argument("--requests", type=int, default=200, help="uploads in all (default 200)")
    parser.add_argument("--concurrency", type=int, default=20, help="uploads in flight at once (default 20)")
    parser.add_argument("--upload-size", type=int, default=224, help="side of the drawn pictures (default 224)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON to write (default {DEFAULT_OUT})")
    args = parser.parse_args()
    git = run_card.git_state()  # the code that runs: read before, not after, the measurement
    server = serve.make_server(args.model, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="heroes-serve-bench-") as folder:
            drawn = Path(folder) / "drawn"
            dataset.write_dataset(drawn, per_class=10, size=args.upload_size, seed=1, progress=False)
            images = sorted(path for path in drawn.rglob("*") if path.is_file())
            result = load_test(server, images, args.requests, args.concurrency)
    finally:
        server.shutdown()
        server.server_close()
    card = dict(server.demo.card)
    result = {
        "benchmark": "serve_latency", "date": time.strftime("%Y-%m-%d"), "model": paths.portable(args.model),
        "backbone": card["Backbone"], "image_size": server.demo.size, "upload_size": args.upload_size,
        **result, "git": git, "machine": machine.describe(),
    }
    write_json(args.out, result)
    latency = result["latency_ms"]
    print(f"{result['correct']} of {args.requests} answers correct; latency p50 {latency['p50']} ms, "
          f"p95 {latency['p95']} ms at {args.concurrency} in flight; wrote {args.out}")


if __name__ == "__main__":
    main()
