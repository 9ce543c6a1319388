"""The README starts where a user starts, and its command list (with docs/) names every sub-command and option of
the parser, and nothing the parser lacks."""

import argparse
import re
import shutil
from pathlib import Path

import pytest

from heroes import cli

PROJECT = Path(__file__).resolve().parents[1]
README = PROJECT / "README.md"
DOCUMENTS = [README, *sorted((PROJECT / "docs").glob("*.md"))]
SHARED = {"--verbose", "--quiet", "--help"}  # the top-level line documents them for every sub-command


def _parser_options():
    """{None: top-level long options, command: its long options}, hidden old spellings left out."""
    parser = cli.build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction)).choices

    def shown(command_parser):
        return {option for action in command_parser._actions if action.help != argparse.SUPPRESS
                for option in action.option_strings if option.startswith("--")}

    return {None: shown(parser) - {"--help"}, **{name: shown(sub) - SHARED for name, sub in commands.items()}}


def _documented_commands():
    """{command or None (top-level): options on its `python -m heroes ...` lines}, indented continuations included."""
    found, current = {}, False
    for document in DOCUMENTS:
        for line in document.read_text().splitlines():
            if line.startswith("python -m heroes "):
                words = [word for word in line.split("#")[0].split()[3:] if re.fullmatch(r"[A-Za-z][\w.-]*", word)]
                current = words[0] if words and words[0] != "COMMAND" else None
            elif current is False or not line.startswith(" ") or not line.strip():
                current = False
                continue
            text = line.split("#")[0]  # comments may mention other commands' options
            found.setdefault(current, set()).update(re.findall(r"--[a-z][a-z0-9-]*", text))
    return found


def test_every_command_and_option_of_the_parser_is_in_the_command_list():
    documented = _documented_commands()
    for command, options in _parser_options().items():
        assert command in documented, f"no `python -m heroes {command}` line in README.md or docs/"
        missing = options - documented[command] - (documented[None] if command else set())
        assert not missing, f"{command or 'python -m heroes'}: {sorted(missing)} not in its command line"


def test_the_command_list_names_nothing_the_parser_lacks():
    options = _parser_options()
    for command, named in _documented_commands().items():
        assert command in options, f"`python -m heroes {command}` is not a command"
        unknown = named - options[command] - options[None]
        assert not unknown, f"{command or 'python -m heroes'}: {sorted(unknown)} are not options"


def test_your_own_photos_starts_within_the_first_40_lines():
    head = "\n".join(README.read_text().splitlines()[:40])
    for text in ("## Your own photos", 'python -m heroes train "My Photos" --out models/my-photos',
                 "python -m heroes predict photo.jpg --model models/my-photos",
                 'run = heroes.train("My Photos", out="models/my-photos")', 'run.predict(["photo.jpg"])',
                 "make reproduce", "make test"):
        assert text in head, text


def test_every_relative_link_leads_to_a_file():
    for document in DOCUMENTS:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", document.read_text()):
            assert (document.parent / target).exists(), f"{document.name}: {target}"


def _python_examples() -> list:
    """The ```python blocks of the README, in order."""
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.slow
def test_the_readme_python_example_runs_as_written(tmp_path, monkeypatch):
    # "My Photos" is the embedded dataset drawn into folders named as a person names them; photo.jpg one of them
    from tests.test_own_photographs import draw_named

    names = {"batman": "Batman", "not_a_hero": "Not a hero", "wonder_woman": "Wonder Woman"}
    photos = draw_named(tmp_path, per_class=10, size=64, names=names)
    shutil.copy(sorted((photos / "Batman").iterdir())[0], tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    example = _python_examples()[0]
    assert 'heroes.train("My Photos"' in example  # the example a user copies first
    namespace = {}
    exec(compile(example, str(README), "exec"), namespace)  # noqa: S102 - our own README, run as a user would
    run = namespace["run"]
    assert (tmp_path / "models" / "my-photos" / "metrics.json").is_file()
    assert sorted(run.metrics["classes"]) == sorted(names.values())
    assert run.predict(["photo.jpg"])["predicted"].iloc[0] in names.values()
