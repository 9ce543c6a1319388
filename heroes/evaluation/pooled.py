"""Evidence pooled over seeds: hierarchical and seed-level intervals, one exact test, CMH by seed, equivalence."""

import math

import numpy
from scipy import stats as scipy_stats

from heroes.errors import UserError
from heroes.evaluation import equivalence, stats
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


def _image_keys(values_by_seed: dict, keys_by_seed) -> list:
    """Each seed's image identities as strings; without ``keys_by_seed`` every seed's images are distinct."""
    if keys_by_seed is None:
        return [numpy.array([f"{seed}/{row}" for row in range(len(values))]) for seed, values in values_by_seed.items()]
    return [numpy.asarray(keys_by_seed[seed]).astype(str) for seed in values_by_seed]


def _image_counts(n_resamples: int, m: int, rng) -> numpy.ndarray:
    """(n_resamples, m) draw counts of m images resampled with replacement: one ordinary bootstrap per row."""
    draws = rng.integers(0, m, (n_resamples, m)) + m * numpy.arange(n_resamples)[:, None]
    return numpy.bincount(draws.ravel(), minlength=n_resamples * m).reshape(n_resamples, m)


def _hierarchical_replicates(values: list, keys: list, n_resamples: int, rng) -> numpy.ndarray:
    """Seeds drawn with replacement, then images: each distinct image's draw count applies to every seed that
    scored it, so an image shared by seeds is one draw (its difficulty counts once). Per seed the count-weighted
    mean; a seed that drew none of its own images (tiny disjoint test sets only) keeps its plain mean."""
    _, columns = numpy.unique(numpy.concatenate(keys), return_inverse=True)
    seeds = rng.integers(0, len(values), (n_resamples, len(values)))
    counts = _image_counts(n_resamples, int(columns.max()) + 1, rng)
    per_seed, start = [], 0
    for seed_values in values:
        weights = counts[:, columns[start:start + len(seed_values)]]
        start += len(seed_values)
        total = weights.sum(axis=1)
        per_seed.append(numpy.where(total > 0, weights @ seed_values / numpy.maximum(total, 1), seed_values.mean()))
    return numpy.take_along_axis(numpy.stack(per_seed, axis=1), seeds, axis=1).mean(axis=1)


def seed_interval(per_seed_values, confidence_level=0.95) -> dict:
    """t-interval of the mean of per-seed values (``scipy.stats.ttest_1samp``): seeds are the units, so it holds
    what varies between seeds (the backbone draw) and nothing is assumed about images."""
    values = numpy.asarray(list(per_seed_values), dtype=float)
    estimate = float(values.mean())
    result = {"estimate": estimate, "n_seeds": len(values), "confidence_level": confidence_level,
              "method": "t-interval over seeds"}
    if len(values) < 2:
        return {**result, "low": math.nan, "high": math.nan, "note": "a seed-level interval needs at least 2 seeds"}
    if numpy.ptp(values) < 1e-12:  # equal up to rounding (38/40 - 30/40 and 10/40 - 2/40 differ in the last bit)
        return {**result, "low": estimate, "high": estimate, "note": "every seed gave the same value"}
    interval = scipy_stats.ttest_1samp(values, 0.0).confidence_interval(confidence_level)
    return {**result, "low": float(interval.low), "high": float(interval.high), "note": ""}


def hierarchical_bootstrap(values_by_seed: dict, keys_by_seed: dict | None = None, *, n_resamples=9999,
                           confidence_level=0.95, seed=0) -> dict:
    """Mean over seeds of each seed's mean, with a hierarchical percentile bootstrap (seeds, then images).

    ``values_by_seed``: {seed: per-image values (correctness, or B − A correctness)}; ``keys_by_seed``: {seed:
    image identities}, so that test sets may differ across seeds and share images. With one seed it is the
    ordinary image bootstrap; with no variation within seeds it is the bootstrap of seeds. It resamples both
    levels, so it is conservative (the seed level already carries image noise). ``seed_level`` beside it.
    """
    values = [numpy.asarray(array, dtype=float) for array in values_by_seed.values()]
    if not values or min(len(array) for array in values) < 1:
        raise UserError("a hierarchical bootstrap needs at least one seed with at least one test image")
    keys = _image_keys(values_by_seed, keys_by_seed)
    replicates = _hierarchical_replicates(values, keys, n_resamples, numpy.random.default_rng(seed))
    means = [float(array.mean()) for array in values]
    tail = (1 - confidence_level) / 2
    low, high = numpy.quantile(replicates, [tail, 1 - tail])
    return {"estimate": float(numpy.mean(means)), "low": float(low), "high": float(high),
            "method": "hierarchical percentile bootstrap", "resampled": "seeds, then test images",
            "n_seeds": len(values), "n_distinct_images": len(numpy.unique(numpy.concatenate(keys))),
            "confidence_level": confidence_level, "n_resamples": n_resamples, "seed": seed,
            "seed_level": seed_interval(means, confidence_level)}


def _bootstrap_options(options: dict) -> dict:
    return {key: options[key] for key in ("n_resamples", "confidence_level", "seed") if key in options}


def hierarchical_accuracy(predictions_by_seed: dict, **options) -> dict:
    """Pooled accuracy over seeds with ``hierarchical_bootstrap`` (images matched by path across seeds)."""
    return hierarchical_bootstrap({seed: p.correct for seed, p in predictions_by_seed.items()},
                                  {seed: p.paths for seed, p in predictions_by_seed.items()},
                                  **_bootstrap_options(options))


def _hierarchical_pairs(pairs: dict, options: dict) -> dict:
    differences = {seed: b.correct.astype(float) - a.correct.astype(float) for seed, (a, b) in pairs.items()}
    result = hierarchical_bootstrap(differences, {seed: a.paths for seed, (a, _) in pairs.items()},
                                    **_bootstrap_options(options))
    return {**result, "direction": "B − A"}


def hierarchical_difference(predictions_a_by_seed: dict, predictions_b_by_seed: dict, **options) -> dict:
    """Paired B − A accuracy pooled over seeds with ``hierarchical_bootstrap``; each seed's pairs share images."""
    return _hierarchical_pairs(_paired_by_seed(predictions_a_by_seed, predictions_b_by_seed), options)


def seed_tables(pairs: dict) -> numpy.ndarray:
    """(seeds, 2, 2) from {seed: (A, B)}: per seed [[B right, B wrong], [A right, A wrong]], ``stratified_cmh``'s
    strata."""
    return numpy.array([[[b.correct.sum(), (~b.correct).sum()], [a.correct.sum(), (~a.correct).sum()]]
                        for a, b in pairs.values()])


def _stratified_cmh(pairs: dict, shared: bool, confidence_level=0.95) -> dict:
    test = stats.cochran_mantel_haenszel(seed_tables(pairs))
    odds = equivalence.mantel_haenszel_odds_ratio(seed_tables(pairs), confidence_level)
    note = ("the seeds score the same images, so their strata are not independent: this p-value is optimistic"
            if shared and len(pairs) > 1 else "")
    return {**test, "common_odds_ratio": odds["estimate"], "low": odds["low"], "high": odds["high"],
            "confidence_level": confidence_level, "direction": "odds of a correct prediction, B over A",
            "strata_by": "seed", "note": note,
            "caveat": " ".join(filter(None, (test["note"], odds["note"], "each seed's two rows are scored on the "
                                             "same images but treated as independent: conservative beside the "
                                             "exact paired test")))}


def stratified_cmh(predictions_a_by_seed: dict, predictions_b_by_seed: dict, confidence_level=0.95) -> dict:
    """Cochran-Mantel-Haenszel test stratified by seed (one 2 x 2 table of model x correct per seed), with the
    Mantel-Haenszel common odds ratio of B being right over A and its CI. Unlike strata of matched pairs, which
    reduce to McNemar on pooled counts, it lets the accuracy level differ between seeds (backbone draws)."""
    pairs = _paired_by_seed(predictions_a_by_seed, predictions_b_by_seed)
    return _stratified_cmh(pairs, shares_test_set(pairs), confidence_level)


def _equivalence(pairs: dict, margin: float) -> dict:
    """TOST over per-seed differences (the seed is the unit), or over one seed's images when there is one seed."""
    if len(pairs) >= 2:
        units = [float(b.correct.mean() - a.correct.mean()) for a, b in pairs.values()]
        return {**equivalence.tost(units, margin), "unit": "seed"}
    a, b = next(iter(pairs.values()))
    return {**equivalence.tost_paired(a, b, margin), "unit": "image"}


def pooled_comparison(predictions_a_by_seed: dict, predictions_b_by_seed: dict, names=("model A", "model B"),
                      margin=equivalence.EQUIVALENCE_MARGIN, **options) -> dict:
    """The headline comparison of two models over every seed: B - A accuracy pooled, with per-seed rows beside it.

    ``predictions_*_by_seed``: {seed: Predictions}; ``names``: (A, B); ``options`` go to ``bootstrap_ci``
    (n_resamples, confidence_level, seed, method). ``difference`` (kept for its readers): with a shared test set the
    mean over images of seed-averaged B - A correctness, bootstrapped over images; otherwise the mean of per-seed
    differences, images resampled within each seed. Neither resamples seeds: ``hierarchical`` does (seeds, then
    images; ``seed_level`` the t-interval over seeds), and is the pooled interval to report.
    ``test`` is ``POOLED_TEST`` (exact binomial, mid-p beside it), ``conditional_odds_ratio`` its exact odds
    ratio; ``cmh`` the Cochran-Mantel-Haenszel test stratified by seed with the common odds ratio;
    ``equivalence`` TOST at ±``margin`` (per-seed differences as units). ``supports_difference``: ``hierarchical``
    excludes 0 and ``test`` p < 0.05. Differences follow ``SIGN_CONVENTION``.
    """
    if len(names) != 2 or names[0] == names[1]:
        raise ValueError(f"names must be two different model names, got {names!r}")
    pairs = _paired_by_seed(predictions_a_by_seed, predictions_b_by_seed)
    shared = shares_test_set(pairs)
    difference, test = (_shared_evidence if shared else _stratified_evidence)(pairs, options)
    hierarchical = _hierarchical_pairs(pairs, options)
    rows = _seed_rows(pairs, names, options)
    direction = f"{names[1]} − {names[0]}"
    return {
        "names": list(names), "direction": direction, "sign_convention": stats.SIGN_CONVENTION,
        "seeds": list(pairs), "n_seeds": len(pairs), "shared_test_set": shared,
        "n_images": [row["n"] for row in rows],
        "accuracy": {name: float(numpy.mean([row[f"{name} accuracy"] for row in rows])) for name in names},
        "per_seed": rows, "difference": {**difference, "direction": direction},
        "hierarchical": {**hierarchical, "direction": direction},
        "seed_level": {**hierarchical["seed_level"], "direction": direction}, "test": test,
        "conditional_odds_ratio": {**equivalence.conditional_odds_ratio(test["b"], test["c"]),
                                   "direction": f"discordant units favouring {names[1]} over {names[0]}"},
        "cmh": _stratified_cmh(pairs, shared, options.get("confidence_level", 0.95)),
        "equivalence": {**_equivalence(pairs, margin), "direction": direction},
        "supports_difference": bool((hierarchical["low"] > 0 or hierarchical["high"] < 0) and test["p_value"] < 0.05),
    }
