"""``--dry-run`` lines: exact text per shell, and round trips through the real shells.

For generated argv and variable values (quotes, ``$()``, backquotes, backslashes, ``!``, newlines, tabs,
unicode, empty strings, non-UTF-8 bytes), the line printed for each shell, run by that shell, must give the
program the same argv, working directory and environment as the real run.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from condakit import REAL_PYTHON, make_env, need, write_exe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from launchkit import LAUNCH, REPO, SHELL_RUNNERS

from launcher.render.shells import (
    CSH,
    FISH,
    POSIX,
    Assignment,
    dialect_for,
    quote_csh,
    quote_fish,
    quote_posix,
    render_line,
)

SHELLS = {name: runner for name, runner in SHELL_RUNNERS.items() if name != "sh"}
HOSTILE_DIR = "w d'q\"$x`b`!ü\\z"
UNEXPORTABLE = "BATCH_job.0_HOSTS"

# --- exact text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "posix", "fish", "csh"),
    [
        ("plain/path-1.0_x", "plain/path-1.0_x", "plain/path-1.0_x", "plain/path-1.0_x"),
        ("", "''", "''", "''"),
        ("a b", "'a b'", "'a b'", "'a b'"),
        ("it's", "'it'\\''s'", "'it\\'s'", "'it'\\''s'"),
        ("back\\slash", "'back\\slash'", "'back\\\\slash'", "'back\\slash'"),
        ("$(x)`y`", "'$(x)`y`'", "'$(x)`y`'", "'$(x)`y`'"),
        ("a!b", "'a!b'", "'a!b'", "'a'\\!'b'"),
        ("=+", "'=+'", "'=+'", "'=+'"),
        ("a=b", "a=b", "a=b", "a=b"),
        ("l1\nl2", "'l1\nl2'", "'l1\nl2'", "'l1''\\\n''l2'"),
    ],
)
def test_quoting_per_dialect(word: str, posix: str, fish: str, csh: str) -> None:
    assert quote_posix(word) == posix
    assert quote_fish(word) == fish
    assert quote_csh(word) == csh


def test_dialects_by_shell_name() -> None:
    for name in ("sh", "dash", "bash", "zsh", "ksh", "/bin/bash", "-bash"):
        assert dialect_for(name) is POSIX
    assert dialect_for("fish") is FISH
    assert dialect_for("tcsh") is CSH and dialect_for("csh") is CSH
    assert dialect_for("powershell") is None


def test_rendered_line_shapes() -> None:
    assign = [
        Assignment("PATH", "/e/bin:/usr/bin", ("/e/bin",)),
        Assignment("MA_LAUNCH_ORIG_LD_LIBRARY_PATH", "/x", copy_of="LD_LIBRARY_PATH"),
        Assignment("A", "it's"),
    ]
    assert render_line(POSIX, "/home/ma-user", ["GONE"], assign, ["python", "t.py"]) == (
        'cd /home/ma-user && exec env -u GONE PATH=/e/bin"${PATH:+:$PATH}" '
        "MA_LAUNCH_ORIG_LD_LIBRARY_PATH=\"${LD_LIBRARY_PATH-}\" 'A=it'\\''s' python t.py"
    )
    assert render_line(FISH, "/w", [], assign, ["x"]) == (
        "cd /w && exec env PATH=/e/bin:/usr/bin MA_LAUNCH_ORIG_LD_LIBRARY_PATH=/x 'A=it\\'s' x"
    )
    # A program whose name holds '=' would be taken for an assignment by env.
    assert render_line(POSIX, "/w", [], [], ["a=b", "c"]).endswith('exec env sh -c \'exec "$0" "$@"\' a=b c')
    assert render_line(POSIX, "/w", [], [], ["-x"]).endswith("exec env -- -x")


# --- real shells -----------------------------------------------------------------------------------

RECORDER = (
    f"#!{REAL_PYTHON}\n"
    "import json, os, sys\n"
    "out = {'argv': [os.fsencode(a).hex() for a in sys.argv[1:]], 'cwd': os.getcwd(),\n"
    "       'env': {k.hex(): v.hex() for k, v in os.environb.items()}}\n"
    "json.dump(out, open(os.environ['REC_OUT'], 'w'))\n"
)

nasty_text = st.lists(
    st.sampled_from(
        [*"ab Z09'\"$`\\!\n\t;&|*?~#()[]{}<>%^=-_:.,/@", "ü", "€", "中", "😀", "$(x)", "`id`", "\\'"]
    ),
    max_size=10,
).map("".join)
raw_bytes = st.binary(max_size=6).filter(lambda b: b"\0" not in b).map(os.fsdecode)
argument = st.one_of(nasty_text, raw_bytes)
var_name = st.from_regex(r"[A-Z][A-Z0-9_]{0,6}", fullmatch=True).filter(
    lambda n: (
        not n.startswith(("MA_", "CONDA", "PYTHON", "LD_", "REC_"))
        and n not in {"PATH", "PWD", "HOME", "SHLVL"}
    )
)
scenario = st.fixed_dictionaries(
    {
        "args": st.lists(argument, max_size=5),
        "state": st.dictionaries(var_name, nasty_text, max_size=4),
        "ld": st.sampled_from([None, "", "/usr/local/nvidia/lib64", "/a::/b:"]),
        "ld_mode": st.sampled_from(["prefix", "off", "auto"]),
        "env_bin_on_path": st.booleans(),
        "unset_inherited": st.booleans(),
    }
)


def _record(cmd: list[str], env: dict[str, str], out: Path) -> dict[str, object]:
    if out.exists():
        out.unlink()
    result = subprocess.run(cmd, env={**env, "REC_OUT": str(out)}, capture_output=True, timeout=60)
    assert result.returncode == 0, (cmd, result.stderr.decode(errors="replace"))
    data: dict[str, object] = json.loads(out.read_text())
    return data


def _env_of(record: dict[str, object]) -> dict[bytes, bytes]:
    env = record["env"]
    assert isinstance(env, dict)
    decoded = {bytes.fromhex(k): bytes.fromhex(v) for k, v in env.items()}
    decoded.pop(b"REC_OUT", None)
    return decoded


def _shell_noise(
    shell_cmd: list[str], rec: Path, env: dict[str, str], workdir: Path, out: Path
) -> set[bytes]:
    """The variables this shell adds or changes by itself on the way to a program (measured, not listed)."""
    dialect = dialect_for(shell_cmd[0]) or POSIX
    line = render_line(dialect, str(workdir), [], [], [str(rec)])
    seen = _env_of(_record([*shell_cmd, line], env, out))
    base = {os.fsencode(k): os.fsencode(v) for k, v in env.items()}
    return {k for k in set(seen) | set(base) if seen.get(k) != base.get(k)} - {b"PWD"}


@pytest.mark.parametrize("shell", list(SHELLS))
@settings(
    max_examples=int(os.environ.get("MA_LAUNCH_TEST_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=scenario)
def test_dry_run_line_does_what_the_real_run_does(
    shell: str, case: dict[str, object], tmp_path: Path
) -> None:
    shell_cmd = SHELLS[shell]
    shell_cmd = [need(shell_cmd[0]), *shell_cmd[1:]]
    state = case["state"]
    assert isinstance(state, dict)
    env_dir = tmp_path / "envs" / "py"
    if not env_dir.exists():
        make_env(env_dir)
        write_exe(env_dir / "bin" / "rec", RECORDER)
        (tmp_path / HOSTILE_DIR).mkdir()
    make_env(
        env_dir, state={**state, "INHERITED_TO_UNSET": "***unset***"} if case["unset_inherited"] else state
    )
    workdir = tmp_path / HOSTILE_DIR
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "MA_", "LD_", "PYTHON"))}
    base.update(PYTHONPATH=str(REPO), XDG_CACHE_HOME=str(tmp_path / "cache"), INHERITED_TO_UNSET="x")
    base[UNEXPORTABLE] = "host-0:6666"
    if case["env_bin_on_path"]:
        base["PATH"] = f"/usr/local/bin:{env_dir}/bin:{base['PATH']}"
    if case["ld"] is not None:
        base["LD_LIBRARY_PATH"] = str(case["ld"])
    args = case["args"]
    assert isinstance(args, list)
    options = ["-q", "-p", str(env_dir), "--workdir", str(workdir), "--ld-library-path", str(case["ld_mode"])]

    real = _record([*LAUNCH, *options, "--", "rec", *args], base, tmp_path / "real.json")
    dry = subprocess.run(
        [*LAUNCH, *options, "--dry-run", "--shell", shell, "--", "rec", *args], env=base, capture_output=True
    )
    assert dry.returncode == 0, dry.stderr
    line = dry.stdout
    assert line.endswith(b"\n") and line.count(b"\n") == 1 + line[:-1].count(b"\n")
    via_shell = _record([*shell_cmd, os.fsdecode(line[:-1])], base, tmp_path / "line.json")

    assert via_shell["argv"] == real["argv"]
    real_argv = real["argv"]
    assert isinstance(real_argv, list)
    assert [bytes.fromhex(a) for a in real_argv] == [os.fsencode(a) for a in args]
    assert via_shell["cwd"] == real["cwd"] == str(workdir)
    noise = _shell_noise(shell_cmd, env_dir / "bin" / "rec", base, workdir, tmp_path / "noise.json")
    base_b = {os.fsencode(k): os.fsencode(v) for k, v in base.items()}
    real_env, line_env = _env_of(real), _env_of(via_shell)
    changed_by_launch = {k for k in set(real_env) | set(base_b) if real_env.get(k) != base_b.get(k)}
    assert not (noise & changed_by_launch), "a variable ma-launch sets is one the shell changes by itself"
    assert {k: v for k, v in line_env.items() if k not in noise} == {
        k: v for k, v in real_env.items() if k not in noise
    }
    assert line_env[UNEXPORTABLE.encode()] == b"host-0:6666"  # dash drops it unless the line restates it
    if case["unset_inherited"]:
        assert b"INHERITED_TO_UNSET" not in line_env
