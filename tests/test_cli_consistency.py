"""One command line: --image-size everywhere (--size still read, with a note), --version, --verbose/--quiet after the
sub-command, positional names in capitals, and every choice shown by --help."""

import argparse
import io
import sys

import pytest
from PIL import Image

import heroes
from heroes import cli, progress
from heroes.errors import UserError

PARSER = cli.build_parser()
COMMANDS = next(action for action in PARSER._actions if isinstance(action, argparse._SubParsersAction)).choices
NOTE = "note: --size is deprecated (removed in heroes 0.2); use --image-size\n"


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out == f"heroes {heroes.__version__}\n" == "heroes 0.1.0\n"


def test_every_image_size_option_is_spelt_image_size():
    for name in ("synth", "train", "reproduce"):
        assert "--image-size" in COMMANDS[name]._option_string_actions, name
    for name, command in COMMANDS.items():
        shown = [option for action in command._actions if action.help != argparse.SUPPRESS
                 for option in action.option_strings]
        assert "--size" not in shown, f"{name} still shows --size"
        assert "--size" not in command.format_help()


@pytest.mark.parametrize("argv", [["synth", "--out", "drawn"], ["reproduce"]])
def test_the_old_size_spelling_still_works_for_one_release_with_a_one_line_note(capsys, argv):
    args = PARSER.parse_args([*argv, "--size", "40"])
    assert args.image_size == 40 and not hasattr(args, "size")
    assert capsys.readouterr().err == NOTE
    assert PARSER.parse_args([*argv, "--image-size", "40"]).image_size == 40
    assert capsys.readouterr().err == ""


def test_synth_draws_at_the_old_spelling_size(tmp_path, capsys):
    assert cli.main(["synth", "--out", str(tmp_path / "drawn"), "--per-class", "1", "--size", "40"]) == 0
    assert capsys.readouterr().err.startswith(NOTE)
    drawn = [path for path in (tmp_path / "drawn").rglob("*") if path.is_file()]
    assert drawn and {Image.open(path).size for path in drawn} == {(40, 40)}


def test_reproduce_range_errors_name_the_new_spelling(capsys, monkeypatch):
    from heroes.reporting import reproduce as pipeline

    monkeypatch.setattr(pipeline, "run_notebooks", lambda *args, **kwargs: pytest.fail("a notebook ran"))
    assert cli.main(["reproduce", "--size", "31"]) == 2
    error = "error: SIZE (--image-size) must be a whole number from 32 to 1024, got 31\n"
    assert capsys.readouterr().err == NOTE + error


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_verbose_and_quiet_are_accepted_before_and_after_every_sub_command(name):
    required = {"synth": ["--out", "o"], "scan": ["d", "--out", "o"], "split": ["m", "--out", "o"],
                "clean": ["m", "--out", "o"], "leakage": ["s"], "train": ["d", "--out", "o"],
                "predict": ["i", "--model", "m"], "export": ["--model", "m"], "serve": ["--model", "m"]}
    argv = [name, *required.get(name, [])]
    plain = PARSER.parse_args(argv)
    assert (plain.verbose, plain.quiet) == (False, False)
    for flag in ("--verbose", "--quiet"):
        for args in (PARSER.parse_args([flag, *argv]), PARSER.parse_args([*argv, flag])):
            assert getattr(args, flag[2:]) is True  # before: not reset by the sub-command's own defaults
            assert getattr(args, "quiet" if flag == "--verbose" else "verbose") is False


def test_verbose_and_quiet_together_are_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setattr(cli, "_scan", lambda args: pytest.fail("the command ran"))
    assert cli.main(["--verbose", "scan", "d", "--out", "o", "--quiet"]) == 2
    assert capsys.readouterr().err == "error: --verbose and --quiet contradict each other; give one of them\n"


def test_quiet_hides_the_progress_bar_and_nothing_else(tmp_path, capsys):
    assert cli.main(["synth", "--out", str(tmp_path / "loud"), "--per-class", "1", "--image-size", "32"]) == 0
    loud = capsys.readouterr()
    assert "synth: 100%" in loud.err  # tqdm draws even when stderr is not a terminal
    assert cli.main(["synth", "--out", str(tmp_path / "quiet"), "--per-class", "1", "--image-size", "32",
                     "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == loud.out.replace("loud", "quiet")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _bars_drawn(monkeypatch) -> list:
    """Which of the package's bars draw on a terminal: progress.bar (features, arrays, fine-tuning) and scan's own
    (also inside `train`)."""
    from heroes.data import scan

    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", Terminal())
        assert list(progress.bar(range(3), desc="features", mininterval=0)) == [0, 1, 2]
        with scan._progress_bar(3, True) as bar:
            bar.update(3)
        drawn = [name for name in ("features", "scan") if name in sys.stderr.getvalue()]
    return drawn


def test_quiet_reaches_kernels_and_the_bars_inside_train(monkeypatch):
    monkeypatch.setattr(cli, "_scan", lambda args: 0)
    assert _bars_drawn(monkeypatch) == ["features", "scan"]
    assert cli.main(["scan", "d", "--out", "o", "--quiet"]) == 0
    assert progress.quiet()  # in the environment, which notebook kernels inherit
    assert _bars_drawn(monkeypatch) == []


BARS = {  # command: the function that draws its bar, and a command line that reaches it
    "synth": ("heroes.data.synthetic.dataset.write_dataset", ["synth", "--out", "{tmp}/drawn"]),
    "clean": ("heroes.cleaning.flags.run", ["clean", "m.csv", "--out", "f.csv"]),
    "leakage": ("heroes.cleaning.leakage.find_leaks", ["leakage", "s.csv"]),
    "predict": ("heroes.serving.predict.run", ["predict", "x.jpg", "--model", "m"]),
}


@pytest.mark.parametrize("name", sorted(BARS))
def test_quiet_turns_off_the_bar_of_each_command_that_has_one(tmp_path, capsys, monkeypatch, name):
    target, argv = BARS[name]
    seen = []

    def record(*args, **kwargs):
        seen.append(kwargs["progress"])
        raise UserError("stopped here")

    monkeypatch.setattr(target, record)
    monkeypatch.setattr("heroes.data.split.read_splits", lambda path: None)  # leakage reads its splits first
    argv = [part.format(tmp=tmp_path) for part in argv]
    for extra in ([], ["--quiet"]):
        assert cli.main([*argv, *extra]) == 2
    assert seen[0] in (True, None) and seen[1] is False, seen  # None: predict's bar shows on a terminal


def test_positional_names_are_in_capitals():
    for name, command in COMMANDS.items():
        for action in command._get_positional_actions():
            shown = action.metavar or action.dest
            assert shown == shown.upper(), f"{name}: {shown}"
            assert shown in command.format_usage()


def test_help_of_every_command_lists_its_choices():
    for name, command in COMMANDS.items():
        text = " ".join(command.format_help().split())  # wrapped lines joined
        for action in command._actions:
            for choice in action.choices or ():
                assert str(choice) in text, f"{name} {action.option_strings}: {choice} not in --help"
    clean_help = " ".join(COMMANDS["clean"].format_help().split())
    assert all(backbone in clean_help for backbone in cli.BACKBONES)  # a free-text option, its names listed
