"""Sentences of the report: verdicts, intervals, spreads and weights warnings, generated from numbers."""

import pandas

from heroes.modeling.backbones import display_name
from heroes.modeling.weights import RANDOM_UNAVAILABLE

NOT_THE_STUDY = "these numbers are NOT the study's"



def weights_warning(choices: dict) -> str | None:
    """The plain warning when any backbone starts from random weights, else None."""
    if not any(choice.random for choice in choices.values()):
        return None
    if all(choice.source == RANDOM_UNAVAILABLE for choice in choices.values()):
        return f"weights: {RANDOM_UNAVAILABLE} — {NOT_THE_STUDY}"
    sources = "; ".join(f"{display_name(name)}: {choice.source}" for name, choice in choices.items())
    return f"weights: random for at least one backbone ({sources}) — {NOT_THE_STUDY}"


def weights_lines(choices: dict) -> str:
    """One line per backbone saying where its starting weights come from, then the warning when random."""
    lines = [f"{display_name(name)} weights: {choice.source}" + (f"; {choice.note}" if choice.note else "")
             for name, choice in choices.items()]
    warning = weights_warning(choices)
    return "\n".join(([warning] if warning else []) + lines)


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


def gap_sentence(summary: pandas.DataFrame, names, val_n: int) -> str:
    """Whether the runs support "the second model overfits more than the first", in one sentence."""
    last = {name: summary.loc[summary["model"] == name].set_index("seed")["last epoch"] for name in names}
    seeds = sorted(set(last[names[0]].index) & set(last[names[1]].index))
    larger = sum(last[names[1]][seed] > last[names[0]][seed] for seed in seeds)
    means = {name: 100 * last[name].mean() for name in names}
    shown = {name: f"{value:.1f}".replace("-", "−") for name, value in means.items()}
    text = (f"At the last epoch the train − validation accuracy gap averaged {shown[names[0]]} points for "
            f"{names[0]} and {shown[names[1]]} for {names[1]} (validation: {val_n} images); {names[1]}'s gap was "
            f"larger in {larger} of {len(seeds)} seed{'s' if len(seeds) != 1 else ''}")
    if len(seeds) < 2:
        return text + ": one seed cannot show a consistent pattern."
    if larger == len(seeds):
        return text + f", consistent with the study's impression that {names[1]} overfits more."
    if larger == 0:
        return text + f", the opposite of the study's impression that {names[1]} overfits more."
    return text + f": no consistent sign that {names[1]} overfits more than {names[0]}."


def percent(value):
    return f"{100 * value:.1f}"


def signed(value):
    """Percentage points with a real minus sign, as typeset; a bound that rounds to zero is "0.0", not "−0.0"."""
    text = f"{100 * value:.1f}"
    return "0.0" if float(text) == 0 else text.replace("-", "−")


def _p(value):
    return "p < 0.001" if value < 0.001 else f"p = {value:.2g}"


def _difference_clause(comparison):
    """'the difference of X points in L's favour (95% CI lo to hi; test p)', oriented leader minus the other."""
    difference, test = comparison["accuracy_difference"], comparison["mcnemar"]
    sign = -1 if difference["estimate"] < 0 else 1
    leader = comparison["names"][0] if sign > 0 else comparison["names"][1]
    low, high = sorted((sign * difference["low"], sign * difference["high"]))
    favour = f" in {leader}'s favour" if difference["estimate"] != 0 else ""
    test_name = "exact McNemar" if test["method"] == "exact" else "McNemar chi-square"
    return (f"the difference of {percent(abs(difference['estimate']))} points{favour} "
            f"({100 * difference['confidence_level']:.0f}% CI {signed(low)} to {signed(high)}; "
            f"{test_name} {_p(test['p_value'])})"), leader


def verdict_sentence(comparison) -> str:
    """One plain sentence from ``compare_models``: accuracies with exact 95% CIs, the paired difference, the call."""
    (name_a, name_b), models, test = comparison["names"], comparison["models"], comparison["mcnemar"]
    scored = [f"{percent(models[name]['accuracy'])}% [{percent(models[name]['accuracy_ci_exact'][0])}, "
              f"{percent(models[name]['accuracy_ci_exact'][1])}]" for name in (name_a, name_b)]
    clause, leader = _difference_clause(comparison)
    difference = comparison["accuracy_difference"]
    excludes_zero = difference["low"] > 0 or difference["high"] < 0
    if test["b"] + test["c"] == 0:  # a bootstrap interval of [0, 0] would read as certainty; say what it means
        clause = "both models are right and wrong on exactly the same images (no discordant pairs, p = 1), so"
        call = "these data cannot tell them apart"
    elif comparison["supports_difference"]:
        call = f"is evidence that {leader} is more accurate than {name_b if leader == name_a else name_a}"
    elif excludes_zero or test["p_value"] < 0.05:
        call = "is not clear evidence of a real difference: the bootstrap interval and McNemar's test disagree"
    else:
        call = "is not evidence of a real difference"
    return f"On {comparison['n']} test images {name_a} scored {scored[0]} and {name_b} {scored[1]}; {clause} {call}."
