"""The README starts where a user starts, and its command list (with docs/) names every sub-command and option of
the parser, and nothing the parser lacks."""

import argparse
import re
from pathlib import Path

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
