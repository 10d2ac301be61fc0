"""The launch option parser: flags, MA_LAUNCH_* variables, and where the command starts."""

from __future__ import annotations

import pytest

from launcher.cli.options import OPTIONS, help_text, parse
from launcher.errors import UsageError


def test_options_stop_at_the_command() -> None:
    parsed = parse(["-n", "py", "--workdir=/w", "python", "-n", "x", "--dry-run"], {})
    assert parsed.values == {"name": "py", "workdir": "/w"}
    assert parsed.command == ["python", "-n", "x", "--dry-run"]


def test_double_dash_and_dash_commands() -> None:
    assert parse(["-q", "--", "--weird", "-x"], {}).command == ["--weird", "-x"]
    assert parse(["--", "--"], {}).command == ["--"]
    assert parse(["-"], {}).command == ["-"]


def test_short_forms() -> None:
    parsed = parse(["-qv", "-npy", "cmd"], {})
    assert parsed.flag("quiet") and parsed.flag("verbose") and parsed.text("name") == "py"
    parsed = parse(["-qn", "py", "cmd"], {})
    assert parsed.text("name") == "py" and parsed.flag("quiet")


def test_c_takes_the_line_and_the_rest_are_args() -> None:
    parsed = parse(["-c", "bash run.sh", "--data_url=/x", "-n"], {})
    assert parsed.text("shell_line") == "bash run.sh"
    assert parsed.command == ["--data_url=/x", "-n"]


def test_environment_defaults_and_flags_win() -> None:
    env = {"MA_LAUNCH_WORKDIR": "/img", "MA_LAUNCH_QUIET": "yes", "MA_LAUNCH_LD_LIBRARY_PATH": "off"}
    parsed = parse(["cmd"], env)
    assert parsed.text("workdir") == "/img" and parsed.flag("quiet")
    assert parsed.text("ld_library_path") == "off"
    parsed = parse(["--workdir", "/flag", "--ld-library-path", "prefix", "cmd"], env)
    assert parsed.text("workdir") == "/flag" and parsed.text("ld_library_path") == "prefix"
    assert not parse(["cmd"], {"MA_LAUNCH_QUIET": "0"}).flag("quiet")


@pytest.mark.parametrize(
    ("argv", "env", "match"),
    [
        (["--nope", "cmd"], {}, "unknown option --nope"),
        (["-Z"], {}, "unknown option -Z"),
        (["-n"], {}, "-n needs a value"),
        (["--workdir"], {}, "--workdir needs a value"),
        (["--dry-run=yes", "x"], {}, "takes no value"),
        (["--ld-library-path", "all", "x"], {}, "not one of"),
        (["x"], {"MA_LAUNCH_DRY_RUN": "maybe"}, "MA_LAUNCH_DRY_RUN"),
        (["x"], {"MA_LAUNCH_LD_LIBRARY_PATH": "all"}, "MA_LAUNCH_LD_LIBRARY_PATH"),
    ],
)
def test_bad_options(argv: list[str], env: dict[str, str], match: str) -> None:
    with pytest.raises(UsageError, match=match) as info:
        parse(argv, env)
    assert info.value.exit_code == 2 and info.value.hint


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--debug", "x"], True),
        (["-n", "--debug", "x"], False),
        (["--workdir=/w", "--debug", "x"], True),
        (["x", "--debug"], False),
        (["--", "--debug"], False),
        (["-c", "line", "--debug"], False),
        (["--unknown", "--debug"], True),
    ],
)
def test_wants_debug_reads_only_our_options(argv: list[str], expected: bool) -> None:
    from launcher.cli.options import wants_debug

    assert wants_debug(argv, {}) is expected


def test_help_lists_every_option_and_its_variable() -> None:
    text = help_text()
    for option in OPTIONS:
        for flag in option.flags:
            assert flag in text
        if option.env:
            assert option.env_name in text


def _run(argv: list[str], env: dict[str, str] | None = None) -> tuple[str, float, str, str | None]:
    from launcher.cli.values import run_options

    run = run_options(parse(argv, env or {}))
    return run.init, run.grace, run.stop_signal, run.summary


def test_stop_signal_and_summary() -> None:
    assert _run(["cmd"]) == ("auto", 25.0, "SIGTERM", None)
    assert _run(["--stop-signal", "USR1", "cmd"]) == ("always", 25.0, "SIGUSR1", None)
    assert _run(["--stop-signal=TERM", "--init", "never", "cmd"]) == ("never", 25.0, "SIGTERM", None)
    assert _run(["cmd"], {"MA_LAUNCH_SUMMARY": "/tmp/s.json", "MA_LAUNCH_STOP_SIGNAL": "INT"}) == (
        "always",
        25.0,
        "SIGINT",
        "/tmp/s.json",
    )
    assert _run(["--init", "always", "cmd"], {"MA_LAUNCH_SUMMARY": ""}) == ("always", 25.0, "SIGTERM", None)


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["--stop-signal", "KILL", "cmd"], "--stop-signal 'KILL' is not one of TERM, INT, HUP, QUIT, USR1"),
        (["--stop-signal", "SIGUSR1", "cmd"], "is not one of"),
        (["--init", "never", "--summary", "s.json", "cmd"], "--summary needs the supervisor"),
        (["--init", "never", "--stop-signal", "USR1", "cmd"], "--stop-signal needs the supervisor"),
    ],
)
def test_bad_stop_options(argv: list[str], text: str) -> None:
    with pytest.raises(UsageError, match=text.replace("(", r"\(")):
        _run(argv)
