"""Progress bars: text on stderr for headless `make reproduce`, the environment restored afterwards."""

import os

from heroes import progress


def test_text_bars_set_the_variable_and_restore_it(monkeypatch):
    monkeypatch.delenv(progress.TEXT_ENV, raising=False)
    with progress.text_bars():
        assert os.environ[progress.TEXT_ENV] == "text"
    assert progress.TEXT_ENV not in os.environ
    monkeypatch.setenv(progress.TEXT_ENV, "widgets")
    with progress.text_bars():
        pass
    assert os.environ[progress.TEXT_ENV] == "widgets"


def test_text_mode_draws_a_plain_bar_with_a_slow_refresh(monkeypatch, capsys):
    monkeypatch.setenv(progress.TEXT_ENV, "text")
    with progress.bar(range(3), desc="features", mininterval=0) as bar:
        assert bar.mininterval == 0  # an explicit choice wins
        for _ in bar:
            pass
    assert "features: 100%" in capsys.readouterr().err
    assert progress.bar(range(1)).mininterval == 5.0


def test_default_mode_keeps_tqdm_auto_refresh(monkeypatch):
    monkeypatch.delenv(progress.TEXT_ENV, raising=False)
    assert progress.bar(range(1)).mininterval == 0.1
