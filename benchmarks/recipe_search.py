"""Choose the fine_tune recipe on validation splits of real photos: each candidate over several split seeds."""

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CANDIDATES = {  # one change each from the base recipe (heroes.training.finetune.FineTune's defaults)
    "base": {},
    "views4": {"views": 4},
    "lr1e-3": {"learning_rate": 1e-3},
    "lr1e-4": {"learning_rate": 1e-4},
    "from-block6": {"train_from": "block6"},
    "from-block4": {"train_from": "block4"},
    "no-smoothing": {"label_smoothing": 0.0},
    "no-augment": {"augment": False},
    "bn-train": {"batchnorm": "train"},
    "bf16": {"precision": "mixed_bfloat16"},
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    parser.add_argument("--out", default="reports/benchmarks/recipe-search-dev.json")
    args = parser.parse_args(argv)

    from heroes import machine
    from heroes.models import build
    from heroes.training import finetune
    from heroes.reporting import run_card
    from heroes.training.folder import prepare

    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {"rows": []}
    cache = Path(tempfile.mkdtemp(prefix="recipe-search-"))
    for seed in args.seeds:
        sets = prepare(args.data_dir, seed=seed, image_size=224, cache_dir=cache, progress=False)["sets"]
        weights = build.choose_weights("efficientnet_lite0", "auto", 224)
        for name in args.candidates:
            recipe = dataclasses.replace(finetune.FineTune(), **CANDIDATES[name])
            start = time.perf_counter()
            outcome = finetune.fine_tune("efficientnet_lite0", weights, sets, recipe, seed, 224, progress=False)
            wall = time.perf_counter() - start
            val = sets["val"]
            row = {"candidate": name, "seed": seed, "recipe": dataclasses.asdict(recipe), "wall_s": round(wall, 1),
                   "precision": outcome["precision"], "best_epoch": outcome["best_epoch"],
                   "head_val_accuracy": outcome["head_val_accuracy"], "val_n": len(val),
                   "steps_s": {k: round(v, 1) for k, v in outcome["steps"].items()}}
            for tta in (False, True):
                probs = finetune.probabilities(outcome["model"], val.images, tta)
                row[f"val_accuracy{'_tta' if tta else ''}"] = float((probs.argmax(1) == val.labels).mean())
            print(json.dumps(row), flush=True)
            results["rows"] = [r for r in results["rows"] if (r["candidate"], r["seed"]) != (name, seed)] + [row]
            results.update(machine=machine.describe(), git=run_card.git_state())
            out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
