"""The reproduce command line prints the report a target returns; the target itself writes nothing to stdout."""

from __future__ import annotations

from pathlib import Path

from advdf.errors import ConfigError
from advdf.papers import reproduce
from advdf.report.render import Lines, Reproduced


def test_the_command_line_prints_the_returned_report(monkeypatch, capsys, tmp_path):
    def target(scale, overrides):
        say = Lines()
        say(f"table at {scale}", len(overrides))
        say()
        say("| a | b |")
        return Reproduced(Path(tmp_path), str(say))

    monkeypatch.setitem(reproduce.TABLES, "kra", target)
    assert reproduce.main(["kra", "--scale", "paper", "x=1"]) == 0
    assert capsys.readouterr().out == "table at paper 1\n\n| a | b |\n"


def test_a_user_error_is_one_line_and_status_2(monkeypatch, capsys):
    def target(scale, overrides):
        raise ConfigError("reproduce lists ['no_such_net'], not registered detectors")

    monkeypatch.setitem(reproduce.TABLES, "kra", target)
    assert reproduce.main(["kra"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "error: reproduce lists ['no_such_net'], not registered detectors\n"
