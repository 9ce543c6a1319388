"""Read the metrics JSON files of a reports folder and walk their nested values (summary and published share it)."""

import json
from pathlib import Path


def read_metrics(metrics_dir) -> tuple:
    """({file stem: parsed JSON}, [problems]) for every ``*.json`` in ``metrics_dir``; unreadable files are named."""
    found, problems = {}, []
    for path in sorted(Path(metrics_dir).glob("*.json")):
        try:
            value = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            problems.append(f"`{path.name}` could not be read ({error.__class__.__name__}: {error}); left out")
            continue
        if not isinstance(value, dict):
            problems.append(f"`{path.name}` is not a JSON object; left out")
            continue
        found[path.stem] = value
    return found, problems


def walk(value, key_path=()):
    """Every (key path, leaf) of nested dicts and lists."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, (*key_path, str(key)))
    elif isinstance(value, list):
        for item in value:
            yield from walk(item, key_path)
    else:
        yield key_path, value
