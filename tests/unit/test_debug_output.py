"""``--debug`` output and the internal-error line follow the masking rule: a traceback shows exception
messages and reprs (never locals), so values from the environment and the command line are searched for in
whatever form they appear, and the rule is applied to the text."""

from __future__ import annotations

import subprocess

import pytest

from launcher.cli import launch
from launcher.cli import main as cli


def _raise_with_secrets(*_args: object, **_kw: object) -> None:
    import os

    try:
        raise subprocess.CalledProcessError(1, ["tool", "--password", "chained-pw-1"])
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"bad value {os.environ['HF_TOKEN']!r} in {exc.cmd!r}") from exc


@pytest.mark.parametrize("debug", [False, True])
def test_internal_errors_and_tracebacks_are_masked(
    debug: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_TOKEN", "env-tok-2")
    monkeypatch.setattr(launch, "plan_for", _raise_with_secrets)
    args = ["--", "train", "--api-key", "argv-key-3"]
    assert cli.run(["--debug", *args] if debug else args) == 70
    err = capsys.readouterr().err
    assert ("Traceback" in err) is debug
    assert "internal error: RuntimeError: bad value '********'" in err
    for secret in ("chained-pw-1", "env-tok-2", "argv-key-3"):
        assert secret not in err, err


def test_a_launch_error_traceback_is_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from launcher.errors import ConfigError

    def refuse(*_args: object, **_kw: object) -> None:
        value = "launch-err-" + "4"  # not one literal: a traceback shows this source line
        raise ConfigError(f"MY_SECRET={value!r} is not allowed", hint="unset it")

    monkeypatch.setattr(launch, "plan_for", refuse)
    assert cli.run(["--debug", "--", "true"]) == 78
    err = capsys.readouterr().err
    assert "Traceback" in err and "launch-err-4" not in err, err
    assert err.rstrip().endswith("ma-launch: error: MY_SECRET='********' is not allowed (hint: unset it)")
