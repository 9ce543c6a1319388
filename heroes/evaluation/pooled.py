"""Evidence pooled over seeds: a bootstrap over test images of seed-averaged correctness, one exact test, and CMH."""

import numpy
from scipy import stats as scipy_stats

from heroes.errors import UserError
from heroes.evaluation import stats
from heroes.evaluation.predictions import align

# Named before any result (issue 16): the pooled test is the exact McNemar on the pooled discordant units.
POOLED_TEST = ("exact McNemar on pooled discordant units: test images when every seed scores the same images "
               "(an image counts for the model right on it in more seeds), (seed, image) pairs otherwise")


def _paired_by_seed(predictions_a_by_seed: dict, predictions_b_by_seed: dict) -> dict:
    """{seed: (A, B) aligned on that seed's test images}; both dicts must name the same seeds."""
    seeds = list(predictions_a_by_seed)
    if not seeds:
        raise UserError("pooled_comparison got no seeds: train at least one seed of each model")
    if set(seeds) != set(predictions_b_by_seed):
        raise UserError(f"the two models were run on different seeds ({sorted(seeds)} vs "
                        f"{sorted(predictions_b_by_seed)}): pool only seeds both have")
    return {seed: align(predictions_a_by_seed[seed], predictions_b_by_seed[seed]) for seed in seeds}


def shares_test_set(pairs: dict) -> bool:
    """True when every seed scored exactly the same test images (by path) as the first seed."""
    first = set(next(iter(pairs.values()))[0].paths)
    return all(set(a.paths) == first and len(a) == len(first) for a, _ in pairs.values())


def _seed_rows(pairs: dict, names, options) -> list:
    """Each seed's paired comparison: accuracies, B - A with its bootstrap CI, the 2 x 2 counts, exact McNemar."""
    rows = []
    for seed, (a, b) in pairs.items():
        only_a, only_b, both_right, both_wrong = stats.discordant_counts(a, b)
        difference, test = stats.difference_ci(a, b, "accuracy", **options), stats.mcnemar_test(only_a, only_b)
        rows.append({"seed": seed, "n": len(a), f"{names[0]} accuracy": float(a.correct.mean()),
                     f"{names[1]} accuracy": float(b.correct.mean()), "difference": difference["estimate"],
                     "CI low": difference["low"], "CI high": difference["high"], f"only {names[0]} right": only_a,
                     f"only {names[1]} right": only_b, "both right": both_right, "both wrong": both_wrong,
                     "exact p": test["p_value"], "mid-p": test["mid_p_value"]})
    return rows


def _shared_evidence(pairs: dict, options: dict) -> tuple:
    """Bootstrap over images of seed-averaged B - A correctness (an image's seeds stay together), and the exact
    test on the images that favour one model across seeds; with one seed that test is exactly McNemar's."""
    reference = next(iter(pairs.values()))[0]
    per_image = []
    for a, b in pairs.values():
        _, a = align(reference, a)
        _, b = align(reference, b)
        per_image.append(b.correct.astype(float) - a.correct.astype(float))
    averaged = numpy.mean(per_image, axis=0)
    difference = stats.bootstrap_ci(lambda values, axis=-1: numpy.mean(values, axis=axis), (averaged,), **options)
    test = stats.mcnemar_test(int(numpy.sum(averaged < 0)), int(numpy.sum(averaged > 0)))
    units = "test images, each image's seeds resampled together"
    return {**difference, "resampled": units}, {**test, "units": "images", "name": POOLED_TEST}


def _stratified_evidence(pairs: dict, options: dict) -> tuple:
    """Different test sets per seed: images resampled within each seed (``scipy.stats.bootstrap``, unpaired
    samples), the mean of per-seed differences; the exact test on (seed, image) discordant pairs."""
    samples = [b.correct.astype(float) - a.correct.astype(float) for a, b in pairs.values()]

    def mean_of_means(*values, axis=-1):
        return numpy.mean([numpy.mean(value, axis=axis) for value in values], axis=0)

    difference = stats.bootstrap_ci(mean_of_means, samples, paired=False, **options)
    counts = numpy.sum([stats.discordant_counts(a, b)[:2] for a, b in pairs.values()], axis=0)
    test = stats.mcnemar_test(*counts)
    return ({**difference, "resampled": "test images within each seed"},
            {**test, "units": "(seed, image) pairs", "name": POOLED_TEST})


def _cmh(pairs: dict, shared: bool) -> dict:
    """CMH across the per-seed matched-pair tables (each pair one stratum), with its exact conditional version."""
    counts = [stats.discordant_counts(a, b) for a, b in pairs.values()]
    tables = numpy.concatenate([stats.matched_pair_tables(*count) for count in counts])
    result = stats.cochran_mantel_haenszel(tables)
    only_a, only_b = (int(sum(count[k] for count in counts)) for k in (0, 1))
    exact = scipy_stats.binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    note = ("the seeds score the same images, so their tables are not independent: an image one model finds hard "
            "counts once per seed, and this p-value is optimistic; the bootstrap and the pooled test count it "
            "once" if shared and len(pairs) > 1 else "")
    return {**result, "exact_p_value": float(exact), "only_a": only_a, "only_b": only_b, "note": note}


def pooled_comparison(predictions_a_by_seed: dict, predictions_b_by_seed: dict, names=("model A", "model B"),
                      **options) -> dict:
    """The headline comparison of two models over every seed: B - A accuracy pooled, with per-seed rows beside it.

    ``predictions_*_by_seed``: {seed: Predictions}; ``names``: (A, B); ``options`` go to ``bootstrap_ci``
    (n_resamples, confidence_level, seed, method). When every seed scores the same test images, the difference
    is the mean over images of per-image correctness averaged over seeds, B - A, with a paired bootstrap CI over
    images; otherwise (seeds vary the split) the mean of per-seed differences, images resampled within each seed.
    ``test`` is ``POOLED_TEST`` (exact binomial, mid-p beside it); ``cmh`` the Cochran-Mantel-Haenszel test
    across the per-seed 2 x 2 tables, reported beside it. ``supports_difference``: the CI excludes 0 and
    ``test`` p < 0.05. Differences follow ``SIGN_CONVENTION``.
    """
    if len(names) != 2 or names[0] == names[1]:
        raise ValueError(f"names must be two different model names, got {names!r}")
    pairs = _paired_by_seed(predictions_a_by_seed, predictions_b_by_seed)
    shared = shares_test_set(pairs)
    difference, test = (_shared_evidence if shared else _stratified_evidence)(pairs, options)
    rows = _seed_rows(pairs, names, options)
    direction = f"{names[1]} − {names[0]}"
    return {
        "names": list(names), "direction": direction, "sign_convention": stats.SIGN_CONVENTION,
        "seeds": list(pairs), "n_seeds": len(pairs), "shared_test_set": shared,
        "n_images": [row["n"] for row in rows],
        "accuracy": {name: float(numpy.mean([row[f"{name} accuracy"] for row in rows])) for name in names},
        "per_seed": rows, "difference": {**difference, "direction": direction}, "test": test,
        "cmh": _cmh(pairs, shared),
        "supports_difference": bool((difference["low"] > 0 or difference["high"] < 0) and test["p_value"] < 0.05),
    }
