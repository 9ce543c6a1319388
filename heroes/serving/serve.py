"""The demo page of ``heroes serve``: drop images, see top-k bars, a Grad-CAM overlay and the model card."""

# Why plain HTML on the standard library's ThreadingHTTPServer rather than Gradio or Streamlit: the page must work
# fully offline (no CDN fonts or scripts), bind to this machine only by default and add no dependency, and what it
# shows (an upload box, a few bars, two pictures and a table) needs neither framework. Gradio and Streamlit each bring
# a web stack of dozens of packages, and Gradio's default theme loads its fonts from a CDN.
#
# One upload at a time goes through decoding and the model (a lock): TensorFlow already uses every core for one image,
# and memory stays one decoding budget whatever the number of clients. Other requests wait their turn, answered.

import base64
import http.server
import io
import json
import socket
import sys
import tempfile
import threading
import traceback
import urllib.error
import urllib.request
import zipfile
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import numpy
from PIL import Image

from heroes.data.decode import DecodeError, decode_image, fit_and_crop
from heroes.errors import UserError, short_error
from heroes.evaluation import explain
from heroes.serving import predict
from heroes.training import runs

HOST, PORT = "127.0.0.1", 8765
TOP_K = 5
MAX_UPLOAD_BYTES = 20 * 2**20  # a phone photo is 2-12 MB
DISCARD_LIMIT = 256 * 2**20  # a larger upload is not read to its end: the connection is closed on it
DECODE_BUDGET = 256 * 2**20  # of decode_image's memory: a larger JPEG is decoded at a smaller scale, others refused
SHOWN_SIZE = 224  # pixels of the pictures the page shows (the model's own crop, larger)
PAGE = "serve_page.html"


def model_card(model_path, class_names) -> list:
    """[label, text] rows: classes, backbone, weights, test accuracy with its exact 95% CI, training date, commit,
    read from the run folder (metrics.json, config.json) and the ``.keras`` file; "not recorded" where absent."""
    from heroes.reporting.run_report import headline

    run_dir = Path(model_path) if Path(model_path).is_dir() else None
    metrics = _json(run_dir / runs.METRICS) if run_dir else {}
    config = _json(run_dir / runs.CONFIG) if run_dir else {}

    def recorded(key):
        return metrics.get(key) or config.get(key) or "not recorded"

    accuracy = headline(metrics).removeprefix("Test accuracy ") if metrics.get("test_n") else "not recorded"
    return [
        ["Classes", ", ".join(class_names)],
        ["Backbone", recorded("backbone")],
        ["Weights", recorded("weights")],
        ["Test accuracy", accuracy],
        ["Trained", metrics.get("trained_at") or _date_saved(predict.model_file(model_path))],
        ["Commit", recorded("commit")],
        ["Model", str(predict.model_file(model_path))],
    ]


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _date_saved(keras_file: Path) -> str:
    """When Keras saved the model, i.e. when training ended: the archive's metadata.json ``date_saved``."""
    try:
        with zipfile.ZipFile(keras_file) as archive:
            return json.loads(archive.read("metadata.json"))["date_saved"].replace("@", " ")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return "not recorded"


def _jpeg_url(pixels: numpy.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Demo:
    """The loaded model and its card; ``answer`` turns the bytes of one upload into what the page shows."""

    def __init__(self, model_path):
        self.model, self.class_names = predict.load_predictor(model_path)
        self.size = predict.input_size(self.model)
        self.card = model_card(model_path, self.class_names)
        self.top_k = min(TOP_K, len(self.class_names))
        try:
            self.layer = explain.gradcam_layer(self.model)
        except ValueError:  # no 4-D feature map (a dense-only model): probabilities without Grad-CAM
            self.layer = None
        self.lock = threading.Lock()

    def answer(self, name: str, data: bytes) -> dict:
        """``predict --json``'s record of the upload (status "ok" with ``top``, or "rejected" with ``reason``), plus
        ``percent`` per class and, when ok, the model's crop (``image``) and its Grad-CAM overlay (``gradcam``)."""
        with self.lock, tempfile.NamedTemporaryFile(prefix="heroes-upload-") as upload:
            upload.write(data)
            upload.flush()
            try:  # by content, under a memory budget: bombs, text, empty and truncated files are a reason
                image = decode_image(upload.name, max_bytes=DECODE_BUDGET)
            except DecodeError as error:
                return rejected(name, f"cannot use this file: {error.reason}")
            heatmap, probabilities = self._look(fit_and_crop(image, self.size))
        shown = fit_and_crop(image, SHOWN_SIZE)
        top = predict.top_classes(probabilities, self.class_names, self.top_k)
        record = predict.Prediction(name, "ok", top=top).to_json()
        for entry in record["top"]:
            entry["percent"] = predict.format_probability(entry["probability"])
        overlay = _jpeg_url(explain.overlay(shown, heatmap)) if heatmap is not None else None
        return {**record, "image": _jpeg_url(shown), "gradcam": overlay}

    def _look(self, pixels: numpy.ndarray) -> tuple:
        """(Grad-CAM heatmap of the predicted class or None, probabilities), from one forward pass."""
        batch = pixels[None].astype("float32")
        if self.layer is None:
            return None, numpy.asarray(self.model.predict_on_batch(batch))[0]
        heatmaps, probabilities = explain.gradcam_and_probabilities(self.model, batch, layer_name=self.layer)
        return heatmaps[0], probabilities[0]


def rejected(name: str, reason: str) -> dict:
    return predict.Prediction(name, "rejected", reason).to_json()


class Handler(http.server.BaseHTTPRequestHandler):
    """GET / (the page), GET /api/card (the model card), POST /api/predict?name=NAME (the file's bytes as body)."""

    server_version = "heroes"
    timeout = 60  # a client that stops sending mid-upload frees its thread

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/":
            self._send(200, resources.files(__package__).joinpath(PAGE).read_bytes(), "text/html; charset=utf-8")
        elif path == "/api/card":
            self._send_json(200, {"rows": self.server.demo.card})
        else:
            self._send_json(404, {"error": f"no page {path}"})

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path != "/api/predict":
            return self._send_json(404, {"error": f"no page {url.path}"})
        name = parse_qs(url.query).get("name", ["upload"])[0]
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            return self._send_json(411, rejected(name, "the upload did not say its length (Content-Length)"))
        if int(length) > MAX_UPLOAD_BYTES:
            self._discard(int(length))
            return self._send_json(413, rejected(name, f"file too large: {int(length) / 2**20:.1f} MB, the limit is "
                                                       f"{MAX_UPLOAD_BYTES / 2**20:.0f} MB"))
        data = self.rfile.read(int(length))
        try:
            answer = self.server.demo.answer(name, data)
        except Exception as error:  # never seen, but one bad image must not stop the demo: say it and keep serving
            traceback.print_exc()
            return self._send_json(500, rejected(name, f"server error: {short_error(error)}"))
        self._send_json(200 if answer["status"] == "ok" else 422, answer)

    def _discard(self, length: int) -> None:
        """Read a refused upload to its end, so the browser gets the answer rather than a reset connection."""
        if length > DISCARD_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 2**20))
            if not chunk:
                break
            length -= len(chunk)

    def _send_json(self, status: int, body: dict) -> None:
        self._send(status, json.dumps(body).encode("utf-8"), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class Server(http.server.ThreadingHTTPServer):
    """One thread per connection; ``demo`` holds the model the handlers share."""

    request_queue_size = 64  # a burst of uploads waits in the listen queue instead of being refused

    def __init__(self, demo: Demo, host: str = HOST, port: int = PORT):
        self.demo = demo
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def make_server(model_path, host: str = HOST, port: int = PORT) -> Server:
    """A server for the model at ``model_path`` (run folder or ``.keras``), listening but not yet serving."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be 0-65535 (0 picks a free one), got {port}")
    demo = Demo(model_path)
    try:
        return Server(demo, host, port)
    except OSError as error:
        raise UserError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def run(model_path, host: str = HOST, port: int = PORT) -> int:
    """What ``python -m heroes serve`` does: serve until Ctrl-C (which ends it like any command, exit 130)."""
    server = make_server(model_path, host, port)
    print(f"serving {predict.model_file(model_path)} at {server.url} (Ctrl-C to stop)", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {host}: other machines can reach this page", file=sys.stderr)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def upload(url: str, name: str, data: bytes, timeout: float = 300) -> tuple:
    """(HTTP status, answer) of one upload to the page at ``url``: what the page's script does, for scripts and tests.

    No proxy, whatever the environment says: the page is on this machine.
    """
    request = urllib.request.Request(f"{url.rstrip('/')}/api/predict?name={quote(name)}", data=data, method="POST",
                                     headers={"Content-Type": "application/octet-stream"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
