"""Sentences of the report: verdicts, intervals, spreads and weights warnings, generated from numbers."""


from heroes.models.backbones import display_name
from heroes.models.weights import RANDOM_UNAVAILABLE

NOT_THE_STUDY = "these numbers are NOT the study's"


def weights_warning(choices: dict) -> str | None:
    """The plain warning when any backbone starts from random weights, else None."""
    if not any(choice.random for choice in choices.values()):
        return None
    if all(choice.source == RANDOM_UNAVAILABLE for choice in choices.values()):
        return f"weights: {RANDOM_UNAVAILABLE} — {NOT_THE_STUDY}"
    sources = "; ".join(f"{display_name(name)}: {choice.source}" for name, choice in choices.items())
    return f"weights: random for at least one backbone ({sources}) — {NOT_THE_STUDY}"


def weights_lines(choices: dict, notes: bool = False) -> str:
    """One line per backbone saying where its starting weights come from (and, with ``notes``, why), then, when any
    starts from random weights, which ones and what that means for their numbers."""
    lines = [f"{display_name(name):10s} weights: {choice.source}"
             + (f"; {choice.note}" if notes and choice.note else "") for name, choice in choices.items()]
    random = [display_name(name) for name, choice in choices.items() if choice.random]
    if random:
        many = len(random) > 1
        lines += ["", f"RANDOM WEIGHTS for {', '.join(random)}: no ImageNet weights were loaded for "
                      f"{'them' if many else 'it'}, so {'they start' if many else 'it starts'} from random "
                      "initialisation;",
                  "numbers for random backbones say nothing about transfer learning. Compare like with like: "
                  "pretrained with pretrained."]
    return "\n".join(lines)


def percent_interval(interval) -> str:
    """``[0.929, 1.0]`` -> ``"[92.9%, 100.0%]"``."""
    low, high = interval
    return f"[{100 * low:.1f}%, {100 * high:.1f}%]"


def accuracy_line(name: str, summary: dict) -> str:
    """``"VGG16: 48/50 correct = 96.0%, exact 95% CI [86.3%, 99.5%]"``."""
    return (f"{name}: {summary['test_correct']}/{summary['test_n']} correct = {100 * summary['test_accuracy']:.1f}%, "
            f"exact 95% CI {percent_interval(summary['test_accuracy_ci'])}")


def spread_text(spread: dict) -> str:
    """'93.3% ± 1.2 (3 seeds)', or why there is no spread."""
    if spread["n_seeds"] < 2:
        return "1 seed: no spread"
    return f"{100 * spread['mean']:.1f}% ± {100 * spread['std']:.1f} ({spread['n_seeds']} seeds)"


def joined_notes(notes: dict) -> str:
    """{model: note} as one line, each distinct note once: 'VGG16, ResNet50: <note>'."""
    by_note = {}
    for name, note in notes.items():
        by_note.setdefault(note, []).append(name)
    return "; ".join(f"{', '.join(names)}: {note}" for note, names in by_note.items())


def _sign_test_clause(test) -> str:
    """'(two-sided sign test p = 0.5; with 2 seeds no outcome can reach p < 0.05)'."""
    text = f"two-sided sign test {_p(test['p_value'])}"
    if test["smallest_possible_p"] >= 0.05:
        count = len(test["seeds"])
        text += f"; with {count} seed{'s' if count != 1 else ''} no outcome can reach p < 0.05"
    return f"({text})"


def _sign_test_call(test, names) -> str:
    """What a sign test over seeds supports, claiming nothing past p < 0.05."""
    if test["p_value"] >= 0.05:
        return "this is not evidence that either model's gap is larger than the other's"
    more = names[1] if test["larger"] > test["untied"] / 2 else names[0]
    return f"evidence that {more}'s gap is larger: it fits its training images better, relative to validation"


def overfitting_sentence(assessment: dict, val_n: int, weights_random: bool = False) -> str:
    """The overfitting verdict from ``heroes.evaluation.overfitting.overfitting_assessment``, never past its data:
    'not assessable' when no run passed its best validation epoch, a sign test over seeds otherwise."""
    names, test = assessment["names"], assessment["sign_test"]
    passed = sum(count for count, _ in assessment["passed_best"].values())
    total = sum(runs for _, runs in assessment["passed_best"].values())
    gaps = {name: signed(value) if value is not None else "—"
            for name, value in assessment["mean_accuracy_gap_at_last"].items()}
    measured = (f"the measured train − validation accuracy gap at the last epoch (training images, a fixed draw per "
                f"run, re-scored with end-of-epoch weights; validation: {val_n} images) averaged {gaps[names[0]]} "
                f"points for {names[0]} and {gaps[names[1]]} for {names[1]}")
    if not assessment["assessable"]:
        text = (f"Overfitting {assessment['reason']} in all {total} runs (best validation epoch = last epoch), so "
                f"no run reached the regime where overfitting would show; for the record, {measured}.")
    else:
        text = (f"Validation loss bottomed out before the last epoch in {passed} of {total} runs. Overall, "
                f"{measured}; {names[1]}'s gap was larger in {test['larger']} of {len(test['seeds'])} seeds "
                f"{_sign_test_clause(test)}: {_sign_test_call(test, names)}.")
    if weights_random:
        text += " These runs start from random weights: they say nothing about the study's ImageNet-trained models."
    return text


def sign_convention(names) -> str:
    """The one orientation of every difference in tables and sentences, stated once: B − A."""
    return f"Differences are {names[1]} − {names[0]} throughout: positive favours {names[1]}."


def percent(value):
    return f"{100 * value:.1f}"


def signed(value, scale: float = 100, digits: int = 1) -> str:
    """Percentage points (``value`` × ``scale``, ``digits`` decimals) with a real minus sign, as typeset; a bound that
    rounds to zero is "0.0", not "−0.0"."""
    text = f"{scale * value:.{digits}f}"
    return f"{0:.{digits}f}" if float(text) == 0 else text.replace("-", "−")


def _p(value):
    return "p < 0.001" if value < 0.001 else f"p = {value:.2g}"


def plus_signed(value, scale: float = 100, digits: int = 1) -> str:
    """Percentage points (or ``signed``'s ``scale`` and ``digits``) with an explicit sign: '+8.7', '−2.0', '0.0'."""
    text = signed(value, scale, digits)
    return text if text.startswith("−") or text == f"{0:.{digits}f}" else f"+{text}"


def _test_text(test, name="exact McNemar") -> str:
    """'exact McNemar p = 0.072, mid-p = 0.054'."""
    return f"{name} {_p(test['p_value'])}, mid-{_p(test['mid_p_value'])}"


def _difference_clause(comparison):
    """'ResNet50 − VGG16 = +8.7 points (95% CI 0.0 to 17.3; exact McNemar p = 0.072, mid-p = 0.054)'."""
    difference, test = comparison["accuracy_difference"], comparison["mcnemar"]
    direction = difference.get("direction") or f"{comparison['names'][1]} − {comparison['names'][0]}"
    return (f"{direction} = {plus_signed(difference['estimate'])} points "
            f"({100 * difference['confidence_level']:.0f}% CI {signed(difference['low'])} to "
            f"{signed(difference['high'])}; {_test_text(test)})")


def _call(supports, difference, test, names, test_name="McNemar's test") -> str:
    """'is evidence that B is more accurate than A' / 'is not evidence…', from the CI (B − A) and the test."""
    excludes_zero = difference["low"] > 0 or difference["high"] < 0
    if supports:
        better, worse = (names[1], names[0]) if difference["estimate"] > 0 else (names[0], names[1])
        return f"is evidence that {better} is more accurate than {worse}"
    if excludes_zero or test["p_value"] < 0.05:
        return f"is not clear evidence of a real difference: the bootstrap interval and {test_name} disagree"
    return "is not evidence of a real difference"


def verdict_sentence(comparison) -> str:
    """One plain sentence from ``compare_models``: accuracies with exact 95% CIs, B − A with its CI, the call."""
    names, models, test = comparison["names"], comparison["models"], comparison["mcnemar"]
    scored = [f"{percent(models[name]['accuracy'])}% [{percent(models[name]['accuracy_ci_exact'][0])}, "
              f"{percent(models[name]['accuracy_ci_exact'][1])}]" for name in names]
    if test["b"] + test["c"] == 0:  # a bootstrap interval of [0, 0] would read as certainty; say what it means
        clause = "both models are right and wrong on exactly the same images (no discordant pairs, p = 1), so"
        call = "these data cannot tell them apart"
    else:
        clause = _difference_clause(comparison)
        call = _call(comparison["supports_difference"], comparison["accuracy_difference"], test, names)
    return f"On {comparison['n']} test images {names[0]} scored {scored[0]} and {names[1]} {scored[1]}; {clause} {call}."


def _pooled_units(pooled) -> str:
    """Where the pooled numbers come from: shared images, or a split per seed."""
    seeds = f"{pooled['n_seeds']} seed{'s' if pooled['n_seeds'] != 1 else ''}"
    if pooled["shared_test_set"]:
        return f"Pooled over {seeds} on the same {pooled['n_images'][0]} test images"
    return f"Pooled over {seeds}, each scored on its own test split ({', '.join(map(str, pooled['n_images']))} images)"


def _cmh_text(cmh) -> str:
    """' Cochran–Mantel–Haenszel stratified by seed p = …, common odds ratio …' — only for a test stratified by seed:
    one stratum per (seed, image) pair is McNemar on the pooled counts again and adds nothing, so it is not said."""
    if not cmh or cmh.get("strata_by") != "seed":
        return ""
    text = f" Cochran–Mantel–Haenszel stratified by seed {_p(cmh['p_value'])}"
    if cmh.get("common_odds_ratio") is not None:
        text += (f", common odds ratio of a correct answer {_ratio(cmh['common_odds_ratio'])} "
                 f"({100 * cmh.get('confidence_level', 0.95):.0f}% CI {_ratio(cmh['low'])} to {_ratio(cmh['high'])})")
    return text + (" (optimistic: the seeds share the images)" if cmh.get("note") else "") + "."


def _ratio(value) -> str:
    return "∞" if value == float("inf") else ("—" if value != value else f"{value:.2f}")


def equivalence_sentence(pooled) -> str:
    """The conditional odds ratio with its CI and which differences TOST excludes at the margin named in advance
    (``pooled_comparison``'s ``conditional_odds_ratio`` and ``equivalence``); '' when the comparison has neither."""
    odds, tost = pooled.get("conditional_odds_ratio"), pooled.get("equivalence")
    names, parts = pooled["names"], []
    if odds:
        parts.append(f"Conditional odds ratio (discordant {pooled['test']['units']} favouring {names[1]} over "
                     f"{names[0]}) {_ratio(odds['estimate'])}, exact 95% CI {_ratio(odds['low'])} to "
                     f"{_ratio(odds['high'])}.")
    if tost:
        margin, unit = signed(tost["margin"]), tost.get("unit", "seed")
        if tost.get("note"):
            parts.append(f"Equivalence at ±{margin} points (TOST) cannot be assessed: {tost['note']}.")
        else:
            level = f"{100 * tost['confidence_level']:.0f}%"
            verdict = (f"so {names[0]} and {names[1]} are equivalent within ±{margin} points" if tost["equivalent"]
                       else f"so equivalence within ±{margin} points is not shown")
            parts.append(f"TOST at ±{margin} points ({tost['units']} {unit}s as units): the {level} interval of "
                         f"{names[1]} − {names[0]} is {signed(tost['low'])} to {signed(tost['high'])}, so differences "
                         f"below {signed(tost['low'])} or above {signed(tost['high'])} points are excluded at the "
                         f"{100 * tost['alpha']:.0f}% level, {verdict} (p = {tost['p_value']:.2g}).")
    return " ".join(parts)


def pooled_sentence(pooled) -> str:
    """The headline verdict from ``heroes.evaluation.pooled.pooled_comparison``: mean accuracies over seeds, B − A
    with its bootstrap CI, the pooled exact test with its counts, and CMH beside it."""
    names, test, difference, cmh = pooled["names"], pooled["test"], pooled["difference"], pooled.get("cmh")
    accuracies = " and ".join(f"{name} {percent(pooled['accuracy'][name])}%" for name in names)
    start = f"{_pooled_units(pooled)}, mean test accuracy was {accuracies}"
    if test["b"] + test["c"] == 0:
        return f"{start}; both models are right on exactly the same images in every seed, so these data cannot tell them apart."
    resampled = ("bootstrap over images of seed-averaged correctness" if pooled["shared_test_set"]
                 else "bootstrap within each seed's images")
    hierarchical = pooled.get("hierarchical")
    if hierarchical:  # the pooled interval resamples seeds too (their backbone draws), then images
        difference, resampled = {**difference, **hierarchical}, "hierarchical bootstrap: seeds, then images"
        level = hierarchical.get("seed_level") or {}
        if level.get("low") is not None and level["low"] == level["low"]:  # not NaN (one seed has none)
            resampled += f"; seed-level t-interval {signed(level['low'])} to {signed(level['high'])}"
    counted = (f"{test['b'] + test['c']} {test['units']} favour one model, {test['c']} {names[1]} and {test['b']} "
               f"{names[0]}: {_test_text(test, 'exact test')}")
    call = _call(pooled["supports_difference"], difference, test, names, "the pooled exact test")
    return (f"{start}; {difference['direction']} = {plus_signed(difference['estimate'])} points "
            f"({100 * difference['confidence_level']:.0f}% CI {signed(difference['low'])} to "
            f"{signed(difference['high'])}, {resampled}; {counted}) {call}.{_cmh_text(cmh)}")


def baseline_clause(network: str, baseline: str, pooled: dict) -> str:
    """What the paired exact test says about one network against one baseline, with its difference and CI (the
    hierarchical interval over seeds and images where the comparison has one: the call follows it)."""
    difference, test = {**pooled["difference"], **(pooled.get("hierarchical") or {})}, pooled["test"]
    numbers = (f"{plus_signed(difference['estimate'])} points, {100 * difference['confidence_level']:.0f}% CI "
               f"{signed(difference['low'])} to {signed(difference['high'])}, paired exact {_p(test['p_value'])}")
    if pooled["supports_difference"]:
        verb = "beats" if difference["estimate"] > 0 else "is beaten by"
        return f"{network} {verb} the {baseline} ({numbers})"
    if test["b"] + test["c"] == 0:
        return f"{network} and the {baseline} are right on exactly the same images (no discordant pairs)"
    if difference["low"] > 0 or difference["high"] < 0 or test["p_value"] < 0.05:
        return (f"{network} against the {baseline} is not clear evidence of a difference: the bootstrap interval and "
                f"the exact test disagree ({numbers})")
    return f"{network} shows no evidence of a difference from the {baseline} ({numbers})"


def baselines_sentence(tests: dict) -> str:
    """One sentence per network from ``heroes.evaluation.grid.baseline_tests``: the claims about baselines follow the
    paired exact tests over every seed's own test images (differences network − baseline), not overlapping CIs."""
    if not tests:
        return ""
    any_pooled = next(iter(next(iter(tests.values())).values()))
    seeds = any_pooled["n_seeds"]
    start = (f"Paired exact tests on each seed's test images, every baseline fitted on that seed's split "
             f"({seeds} seed{'s' if seeds != 1 else ''}, pooled; differences are network − baseline): ")
    clauses = [baseline_clause(network, baseline, pooled)
               for network, against in tests.items() for baseline, pooled in against.items()]
    return start + "; ".join(clauses) + "."


def convergence_sentence(convergence: dict, patience: int, names=None) -> str:
    """How often the best validation epoch was the last one trained, per model, under the stopping rule."""
    names = names or {}
    rule = (f"early stopping on validation loss with patience {patience}" if patience
            else "a fixed number of epochs (no early stopping)")
    maximum = max((entry["max_epochs"] for entry in convergence.values()), default=0)
    counts = ", ".join(f"{names.get(backbone, backbone)} {entry['best_is_last']} of {entry['runs']}"
                       for backbone, entry in convergence.items())
    total = sum(entry["best_is_last"] for entry in convergence.values())
    runs = sum(entry["runs"] for entry in convergence.values())
    text = (f"Trained with {rule}, at most {maximum} epoch{'s' if maximum != 1 else ''}, keeping the lowest-validation-loss epoch; the best "
            f"epoch was the last one trained in {counts} runs")
    if total:
        text += (f": {total} of {runs} runs may still have been improving when the maximum stopped them, so their "
                 "numbers are not those of converged models")
    else:
        text += ": every run passed its best epoch before stopping"
    return text + "."


SCORE_NAMES = {"brier": "Brier score", "log_loss": "Log loss"}


def calibration_sentence(calibration: dict, pairing: str = "") -> str:
    """The primary calibration result (``heroes.evaluation.calibration.compare_calibration``): each model's Brier
    score and log loss with 95% intervals, and the paired difference of each, lower being better."""
    names, parts = calibration["names"], []
    for score, label in SCORE_NAMES.items():
        values = ", ".join(f"{name} {calibration['models'][name][score]['estimate']:.3f} "
                           f"[{calibration['models'][name][score]['low']:.3f}, "
                           f"{calibration['models'][name][score]['high']:.3f}]" for name in names)
        difference = calibration["differences"][score]
        if difference["low"] > 0 or difference["high"] < 0:
            better = names[1] if difference["estimate"] < 0 else names[0]
            call = f"{better} is better calibrated by this score"
        else:
            call = "no evidence of a difference"
        estimate, low, high = (plus_signed(difference[key], scale=1, digits=3) for key in ("estimate", "low", "high"))
        parts.append(f"{label} {values}; {calibration['direction']} = {estimate} (95% CI {low} to {high}): {call}.")
    where = f" ({pairing})" if pairing else ""
    return f"Proper scores, lower is better{where}: " + " ".join(parts)


def flagged_test_sentence(effect) -> str:
    """How leaving the review-flagged test images out changes each model's accuracy (``grid.flagged_test_effect``)."""
    if effect is None or not len(effect):
        return ""
    flagged, images = int(effect["flagged"].iloc[0]), int(effect["images"].iloc[0])
    if flagged == 0:
        return "No test image waits for review: the test split is scored once, as it is."
    moves = "; ".join(f"{row.model} {percent(row.accuracy_all)}% → {percent(row.accuracy_unflagged)}% "
                      f"({plus_signed(row.accuracy_unflagged - row.accuracy_all)} points)"
                      for row in effect.itertuples())
    return (f"The test split is scored as it is (every image: the headline) and without the images flagged for "
            f"review ({flagged} of the {images} test predictions over all seeds' runs): {moves}. The flags come from a logistic "
            "regression on EfficientNet-Lite0's embedding, so the unflagged score could favour that backbone and "
            "its probe; the headline never leaves them out.")
