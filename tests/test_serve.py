"""serve: the demo page answers each upload as `predict` would, refuses bad ones in one line, and works in a browser."""

import base64
import importlib.util
import json
import re
import shutil
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from benchmark_scripts import load_script
from test_decode import png_header

from heroes import cli, paths
from heroes.data.synthetic import dataset
from heroes.evaluation.stats import clopper_pearson
from heroes.serving import predict, serve

SCREENSHOT = paths.FIGURES / "demo-page.png"  # for a person to look at after `make test` (git-ignored)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(run folder, drawn images): a run written by `heroes train` on a small drawn set, one epoch at 64 px."""
    root = tmp_path_factory.mktemp("serve")
    dataset.write_dataset(root / "data", per_class=10, size=64, seed=0, progress=False)
    arguments = ["train", str(root / "data"), "--out", str(root / "run"), "--epochs", "1", "--image-size", "64"]
    assert cli.main(arguments) == 0
    return root / "run", sorted(path for path in (root / "data").rglob("*") if path.is_file())


@pytest.fixture(scope="module")
def server(trained):
    """The page on a free loopback port, served from a thread for the module's tests."""
    server = serve.make_server(trained[0], port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def expected(server, images) -> dict:
    """What `predict` says of each image with the page's own model: path -> Prediction."""
    demo = server.demo
    found = predict.iter_predictions(demo.model, demo.class_names, images, top_k=demo.top_k, progress=False)
    return {prediction.path: prediction for prediction in found}


def check_answer(answer: dict, reference) -> None:
    assert answer["status"] == "ok" and answer["predicted"] == reference.top[0][0]
    assert [entry["label"] for entry in answer["top"]] == [label for label, _ in reference.top]
    assert [entry["probability"] for entry in answer["top"]] == pytest.approx([p for _, p in reference.top], abs=1e-5)
    assert answer["image"].startswith("data:image/jpeg;base64,") and answer["gradcam"].startswith("data:image/jpeg")


def test_twenty_concurrent_uploads_each_get_their_own_answer(server, trained):
    images = trained[1][::3][:20]  # every class, and 20 different pictures: a mixed-up answer shows
    references = expected(server, [str(path) for path in images])
    start = threading.Barrier(len(images))

    def send(path):
        start.wait()  # all 20 in flight at once
        return serve.upload(server.url, path.name, path.read_bytes())

    with ThreadPoolExecutor(len(images)) as pool:
        answers = list(pool.map(send, images))
    assert len({answer["probability"] for _, answer in answers}) > 1
    for path, (status, answer) in zip(images, answers):
        assert status == 200 and answer["path"] == path.name
        check_answer(answer, references[str(path)])


NOT_AN_IMAGE = "cannot use this file: not an image (looks like HTML/text)"


@pytest.mark.parametrize("make, status, reason", [
    (lambda: b"<html>not a picture</html>", 422, NOT_AN_IMAGE),
    (lambda: png_header(10_000, 10_000), 422, "cannot use this file: too large: 10000x10000 = 100 Mpx exceeds limit "
                                              "50 Mpx"),
    (lambda: b"", 422, "cannot use this file: empty file"),
    (lambda: bytes(50 * 2**20), 413, "file too large: 50.0 MB, the limit is 20 MB"),
], ids=["text", "decompression-bomb", "zero-bytes", "50-MB"])
def test_a_bad_upload_is_one_clear_message_and_the_server_keeps_serving(server, trained, make, status, reason):
    got_status, answer = serve.upload(server.url, "upload.jpg", make())
    assert (got_status, answer["status"], answer["reason"]) == (status, "rejected", reason)
    image = trained[1][0]
    status, answer = serve.upload(server.url, image.name, image.read_bytes())
    assert status == 200
    check_answer(answer, expected(server, [str(image)])[str(image)])


def test_the_latency_benchmark_counts_and_checks_every_upload(server, trained):
    result = load_script("serve_benchmark").load_test(server, trained[1][:4], requests=6, concurrency=3)
    assert (result["requests"], result["correct"]) == (6, 6)
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p95"] <= result["latency_ms"]["max"]


def test_the_model_card_is_read_from_the_run_folder(server, trained):
    metrics = json.loads((trained[0] / "metrics.json").read_text())
    low, high = clopper_pearson(metrics["test_correct"], metrics["test_n"])
    card = dict(serve.model_card(trained[0], metrics["class_names"]))
    assert card["Classes"] == ", ".join(metrics["class_names"])
    assert (card["Backbone"], card["Weights"]) == (metrics["backbone"], metrics["weights"])
    assert f"(exact 95% CI {100 * low:.1f}-{100 * high:.1f}%) on {metrics['test_n']} images" in card["Test accuracy"]
    assert card["Trained"] == metrics["trained_at"]  # recorded by heroes train (ISO 8601, UTC)
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", card["Trained"])


def test_the_page_loads_nothing_from_elsewhere_and_binds_to_this_machine(server):
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(server.url) as response:
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        page = response.read().decode("utf-8")
    assert 'id="files"' in page
    assert not re.search(r"https?:|[\"'(]//|@import", page)  # no CDN font, script or stylesheet
    assert server.server_address[0] == "127.0.0.1"
    assert cli.build_parser().parse_args(["serve", "--model", "run"]).host == "127.0.0.1"


def test_serving_a_missing_model_is_one_line_and_exit_2(tmp_path, capsys):
    assert cli.main(["serve", "--model", str(tmp_path / "absent"), "--port", "0"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: ")


def _browser_paths():
    """(chromium, chromedriver) where both and Selenium are installed, else None."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver and importlib.util.find_spec("selenium") else None


@pytest.fixture
def browser():
    found = _browser_paths()
    if found is None:
        pytest.skip("browser test: no chromium + chromedriver + selenium (apt-get install chromium chromium-driver)")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1500"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=found[1]), options=options)
    yield driver
    driver.quit()


DROP = """const [name, encoded] = arguments;
const transfer = new DataTransfer();
transfer.items.add(new File([Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0))], name));
document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));"""


def test_the_page_in_a_real_browser(browser, server, trained, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    picked, dropped = trained[1][1], trained[1][-1]
    references = expected(server, [str(picked), str(dropped)])
    text = tmp_path / "notes.txt"
    text.write_text("a shopping list, not a photo")
    browser.get(server.url)
    wait = WebDriverWait(browser, 120)
    wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "#card-rows dd"))
    browser.find_element(By.ID, "files").send_keys(f"{picked}\n{text}")  # the file picker, two files at once
    browser.execute_script(DROP, dropped.name, base64.b64encode(dropped.read_bytes()).decode("ascii"))
    done = '.result:not([data-status="pending"])'
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, done)) == 3)

    results = {item.find_element(By.CSS_SELECTOR, ".name").text: item
               for item in browser.find_elements(By.CSS_SELECTOR, ".result")}
    for path in (picked, dropped):
        result = results[path.name]
        assert result.get_attribute("data-status") == "ok"
        assert result.find_element(By.CSS_SELECTOR, ".predicted").text == references[str(path)].top[0][0]
        assert len(result.find_elements(By.CSS_SELECTOR, ".bars li")) == server.demo.top_k
        overlay = result.find_element(By.CSS_SELECTOR, "img.gradcam")
        assert browser.execute_script("return arguments[0].naturalWidth", overlay) == serve.SHOWN_SIZE
    refused = results[text.name]
    assert refused.get_attribute("data-status") == "rejected"
    assert refused.find_element(By.CSS_SELECTOR, ".message").text == NOT_AN_IMAGE
    assert server.demo.card[1][1] in browser.find_element(By.ID, "card").text  # the backbone, in the model card
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
