"""What TFLite quantisation costs in accuracy: a run's model exported as float32, float16 and dynamic-range TFLite,
each scored beside Keras on freshly drawn pictures.

    python benchmarks/tflite_quantization.py --model RUN [--per-class 50]
                                             [--out reports/benchmarks/tflite-quantization.json]

RUN is a run folder from ``heroes train`` on the drawn dataset (its classes are the drawn ones). The pictures are drawn
with another seed than the default one, decoded and resized exactly as ``heroes predict`` does.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy  # noqa: E402

from heroes import machine, paths  # noqa: E402
from heroes.data.decode import decode_image, fit_and_crop  # noqa: E402
from heroes.data.synthetic import dataset  # noqa: E402
from heroes.io import write_json  # noqa: E402
from heroes.serving import export, predict  # noqa: E402
from heroes.reporting import run_card  # noqa: E402

DEFAULT_OUT = paths.REPORTS / "benchmarks" / "tflite-quantization.json"


def drawn_set(folder: Path, class_names, per_class: int, size: int) -> tuple:
    """(images at ``size``, labels): ``per_class`` fresh pictures of each class, seed 1."""
    dataset.write_dataset(folder, per_class=per_class, size=224, seed=1, progress=False)
    files = [(path, class_names.index(path.parent.name)) for path in sorted(folder.glob("*/*"))
             if path.parent.name in class_names]
    images = numpy.stack([fit_and_crop(decode_image(path), size) for path, _ in files]).astype("float32")
    return images, numpy.array([label for _, label in files])


def scores(probabilities, reference, labels) -> dict:
    return {"accuracy": round(float((probabilities.argmax(1) == labels).mean()), 4),
            "top1_same_as_keras": round(float((probabilities.argmax(1) == reference.argmax(1)).mean()), 4),
            "max_abs_probability_change": float(numpy.abs(probabilities - reference).max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="run folder from heroes train on drawn pictures")
    parser.add_argument("--per-class", type=int, default=50, help="pictures drawn per class (default 50)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON to write (default {DEFAULT_OUT})")
    args = parser.parse_args()
    git = run_card.git_state()
    model, class_names = predict.load_predictor(args.model)
    with tempfile.TemporaryDirectory(prefix="heroes-tflite-bench-") as folder:
        images, labels = drawn_set(Path(folder) / "drawn", class_names, args.per_class, predict.input_size(model))
        reference = numpy.asarray(model.predict(images, verbose=0))
        rows = {"keras": {**scores(reference, reference, labels),
                          "megabytes": round(predict.model_file(args.model).stat().st_size / 1e6, 2)}}
        for quantize in export.QUANTIZATIONS:
            out = export.export_model(args.model, "tflite", Path(folder) / f"model_{quantize}.tflite", quantize)
            rows[quantize] = {**scores(export.tflite_probabilities(out, images), reference, labels),
                              "megabytes": round(out.stat().st_size / 1e6, 2)}
    result = {"benchmark": "tflite_quantization", "date": time.strftime("%Y-%m-%d"),
              "model": paths.portable(args.model), "images": len(labels), "image_size": predict.input_size(model),
              "rows": rows, "git": git, "machine": machine.describe()}
    write_json(args.out, result)
    for name, row in rows.items():
        print(f"{name:8} accuracy {100 * row['accuracy']:.2f}%  top-1 as Keras {100 * row['top1_same_as_keras']:.2f}%  "
              f"max |dp| {row['max_abs_probability_change']:.2g}  {row['megabytes']} MB")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
