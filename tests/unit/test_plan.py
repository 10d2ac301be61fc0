"""The plan as data: env resolution, activation, LD_LIBRARY_PATH, workdir, argv — on fake prefixes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from condakit import make_env, make_root, write_exe

from launcher.core.build import build_plan
from launcher.core.conda import choose_env, validate_name
from launcher.core.paths import prepend_entries, split_path
from launcher.core.request import Request
from launcher.core.sourcing import ShellOutput
from launcher.errors import (
    CommandNotExecutable,
    CommandNotFound,
    ConfigError,
    DataError,
    NotFoundError,
    UnavailableError,
    UsageError,
)
from launcher.run.activate import run_bash_program


def plan_for(tmp_path: Path, environ: dict[str, str], **kw: object):  # type: ignore[no-untyped-def]
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    kw.setdefault("workdir", str(work))
    kw.setdefault("command", ("true",))
    base = {"PATH": "/usr/bin:/bin", **environ}
    return build_plan(Request(**kw), base, str(tmp_path), script_runner=run_bash_program)  # type: ignore[arg-type]


# --- env resolution -----------------------------------------------------------------------------


def test_prefix_wins_over_everything(tmp_path: Path) -> None:
    root = make_root(tmp_path / "conda", ("a", "b"))
    plan = plan_for(
        tmp_path,
        {"ANACONDA_DIR": str(root), "DEFAULT_CONDA_ENV_NAME": "a"},
        prefix=str(root / "envs" / "b"),
    )
    assert plan.choice.rule == "prefix"
    assert plan.environ["CONDA_PREFIX"] == str(root / "envs" / "b")
    assert plan.environ["CONDA_DEFAULT_ENV"] == "b"


def test_name_base_is_the_root(tmp_path: Path) -> None:
    root = make_root(tmp_path / "conda", ("a",))
    plan = plan_for(tmp_path, {"ANACONDA_DIR": str(root)}, name="base")
    assert plan.choice.env is not None and plan.choice.env.prefix == str(root)
    assert plan.environ["CONDA_DEFAULT_ENV"] == "base"


def test_interpreter_path_in_command(tmp_path: Path) -> None:
    root = make_root(tmp_path / "conda", ("py37",))
    python = str(root / "envs" / "py37" / "bin" / "python")
    plan = plan_for(
        tmp_path, {"ANACONDA_DIR": str(root), "DEFAULT_CONDA_ENV_NAME": "base"}, command=(python, "-V")
    )
    assert plan.choice.rule == "interpreter"
    assert plan.choice.env is not None and plan.choice.env.name == "py37"


def test_root_interpreter_is_base(tmp_path: Path) -> None:
    root = make_root(tmp_path / "anaconda3", ("x",))
    plan = plan_for(tmp_path, {}, command=(str(root / "bin" / "python"), "-V"))
    assert plan.choice.env is not None and plan.choice.env.name == "base"


def test_anaconda_dir_and_default_name(tmp_path: Path) -> None:
    root = make_root(tmp_path / "conda", ("python-3.7.10",))
    plan = plan_for(tmp_path, {"ANACONDA_DIR": str(root), "DEFAULT_CONDA_ENV_NAME": "python-3.7.10"})
    assert plan.choice.rule == "anaconda_dir"
    assert plan.environ["PATH"].split(":")[0] == str(root / "envs" / "python-3.7.10" / "bin")


def test_conda_prefix_then_path(tmp_path: Path) -> None:
    root = make_root(tmp_path / "conda", ("a", "b"))
    plan = plan_for(tmp_path, {"CONDA_PREFIX": str(root / "envs" / "a"), "CONDA_SHLVL": "1"})
    assert plan.choice.rule == "conda_prefix"
    assert plan.environ["CONDA_SHLVL"] == "1"  # re-activating the same env does not stack
    bindir = str(root / "envs" / "b" / "bin")
    plan = plan_for(tmp_path, {"PATH": f"{bindir}:/usr/bin"})
    assert plan.choice.rule == "path"
    assert plan.choice.env is not None and plan.choice.env.name == "b"


def test_no_env_runs_as_is(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, {})
    assert plan.choice.env is None
    assert "CONDA_PREFIX" not in plan.environ
    assert plan.ld.added == ()


def test_unknown_env_lists_closest_first_and_never_falls_through(tmp_path: Path) -> None:
    root = make_root(tmp_path / "conda", ("pytorch-2.1", "tensorflow-2.1", "python-3.7.10"))
    with pytest.raises(NotFoundError) as info:
        plan_for(tmp_path, {"ANACONDA_DIR": str(root), "DEFAULT_CONDA_ENV_NAME": "python-3.7"})
    assert info.value.exit_code == 66
    assert info.value.hint is not None
    assert info.value.hint.index("python-3.7.10") < info.value.hint.index("tensorflow-2.1")
    with pytest.raises(NotFoundError):
        plan_for(tmp_path, {"ANACONDA_DIR": str(root)}, name="nope")


@pytest.mark.parametrize("name", ["a/b", "..", "../x", "x\0y", ""])
def test_bad_env_names(name: str) -> None:
    with pytest.raises(UsageError):
        validate_name(name)


def test_relative_or_missing_anaconda_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not an absolute path"):
        plan_for(tmp_path, {"ANACONDA_DIR": "anaconda3", "DEFAULT_CONDA_ENV_NAME": "x"})
    with pytest.raises(ConfigError, match="does not exist"):
        plan_for(tmp_path, {"ANACONDA_DIR": str(tmp_path / "missing"), "DEFAULT_CONDA_ENV_NAME": "x"})
    # Not needed for the launch: a warning, not an error.
    plan = plan_for(tmp_path, {"ANACONDA_DIR": "anaconda3"})
    assert any("ANACONDA_DIR" in w for w in plan.warnings)


def test_prefix_that_is_not_an_env(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotFoundError, match="no conda-meta"):
        plan_for(tmp_path, {}, prefix=str(tmp_path / "plain"))
    with pytest.raises(NotFoundError, match="does not exist"):
        plan_for(tmp_path, {}, prefix=str(tmp_path / "missing"))
    with pytest.raises(UsageError):
        plan_for(tmp_path, {}, prefix=str(tmp_path / "plain"), name="x")


def test_choose_env_relative_prefix_is_from_cwd(tmp_path: Path) -> None:
    make_env(tmp_path / "envs" / "e")
    choice = choose_env({}, name=None, prefix="envs/e", first_word=None, cwd=str(tmp_path))
    assert choice.env is not None and choice.env.prefix == str(tmp_path / "envs" / "e")


# --- activation ---------------------------------------------------------------------------------


def test_path_first_without_duplicates_and_old_env_replaced(tmp_path: Path) -> None:
    root = make_root(tmp_path / "conda", ("a", "b"))
    a_bin, b_bin = str(root / "envs" / "a" / "bin"), str(root / "envs" / "b" / "bin")
    plan = plan_for(
        tmp_path,
        {
            "ANACONDA_DIR": str(root),
            "PATH": f"/usr/bin:{b_bin}:{a_bin}::/bin",
            "CONDA_PREFIX": str(root / "envs" / "a"),
            "CONDA_SHLVL": "1",
        },
        name="b",
    )
    assert plan.environ["PATH"] == f"{b_bin}:/usr/bin:/bin"
    assert plan.environ["CONDA_SHLVL"] == "2"
    assert plan.environ["CONDA_PREFIX_1"] == str(root / "envs" / "a")


def test_conda_exe_only_when_root_has_conda(tmp_path: Path) -> None:
    root = make_root(tmp_path / "conda", ("a",))
    plan = plan_for(tmp_path, {"ANACONDA_DIR": str(root)}, name="a")
    assert "CONDA_EXE" not in plan.environ
    make_root(root, conda=True)
    plan = plan_for(tmp_path, {"ANACONDA_DIR": str(root)}, name="a")
    assert plan.environ["CONDA_EXE"] == str(root / "bin" / "conda")
    assert plan.environ["CONDA_PYTHON_EXE"] == str(root / "bin" / "python")
    assert plan.environ["CONDA_PROMPT_MODIFIER"] == "(a) "


def test_env_vars_d_then_state_wins_unset_and_case_kept(tmp_path: Path) -> None:
    env = make_env(
        tmp_path / "e",
        env_vars_d={"10-a.json": {"X": "from-d", "mixedCase": "kept"}, "20-b.json": {"Y": "d2"}},
        state={"X": "from-state", "GONE": "***unset***", "PATH": "/evil"},
    )
    plan = plan_for(tmp_path, {"GONE": "1"}, prefix=str(env))
    assert plan.environ["X"] == "from-state"
    assert plan.environ["mixedCase"] == "kept"
    assert plan.environ["Y"] == "d2"
    assert "GONE" not in plan.environ and "GONE" in plan.net_unset()
    assert "/evil" not in plan.environ["PATH"]
    assert any("sets PATH" in w for w in plan.warnings)
    assert plan.source_of("X").endswith("conda-meta/state")


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"env_vars": [1]}'])
def test_malformed_state_is_a_data_error(tmp_path: Path, text: str) -> None:
    env = make_env(tmp_path / "e")
    (env / "conda-meta" / "state").write_text(text)
    with pytest.raises(DataError) as info:
        plan_for(tmp_path, {}, prefix=str(env))
    assert info.value.exit_code == 65
    assert "state" in info.value.message


def test_scripts_see_conda_prefix_and_their_changes_apply(tmp_path: Path) -> None:
    env = make_env(
        tmp_path / "e",
        state={"FROM_STATE": "s"},
        scripts={
            "a.sh": 'export SEEN="$CONDA_PREFIX|$FROM_STATE"\nunset DROP_ME\necho noise\n',
            "b.sh": 'export SEEN2="${SEEN}+b"\n',
        },
    )
    plan = plan_for(tmp_path, {"DROP_ME": "1"}, prefix=str(env))
    assert plan.environ["SEEN"] == f"{env}|s"
    assert plan.environ["SEEN2"] == f"{env}|s+b"
    assert "DROP_ME" not in plan.environ
    assert plan.source_of("SEEN").endswith("a.sh")
    assert plan.source_of("SEEN2").endswith("b.sh")


def test_failing_script_warns_and_goes_on_unless_strict(tmp_path: Path) -> None:
    env = make_env(tmp_path / "e", scripts={"a.sh": "export A=1\nfalse\n", "b.sh": "export B=2\n"})
    plan = plan_for(tmp_path, {}, prefix=str(env))
    assert plan.environ["A"] == "1" and plan.environ["B"] == "2"
    assert any("a.sh failed" in w for w in plan.warnings)
    with pytest.raises(ConfigError, match=r"a\.sh failed"):
        plan_for(tmp_path, {}, prefix=str(env), strict_activation=True)


def test_script_that_exits_the_shell(tmp_path: Path) -> None:
    env = make_env(tmp_path / "e", scripts={"a.sh": "export A=1\n", "b.sh": "exit 3\n"})
    plan = plan_for(tmp_path, {}, prefix=str(env))
    assert plan.environ["A"] == "1"
    assert any("b.sh ended the shell" in w for w in plan.warnings)


def test_no_subprocess_without_scripts(tmp_path: Path) -> None:
    env = make_env(tmp_path / "e", state={"A": "1"})

    def runner(*_args: object) -> ShellOutput:
        raise AssertionError("no activation shell may run when there are no scripts")

    plan = build_plan(
        Request(command=("true",), prefix=str(env), workdir=str(tmp_path)),
        {"PATH": "/usr/bin"},
        str(tmp_path),
        script_runner=runner,
    )
    assert plan.environ["A"] == "1"


# --- LD_LIBRARY_PATH ----------------------------------------------------------------------------


def test_ld_prefix_keeps_existing_entries_no_duplicates_no_empty(tmp_path: Path) -> None:
    env = make_env(tmp_path / "e")
    lib = str(env / "lib")
    original = f"/usr/local/nvidia/lib64::{lib}:/usr/local/cuda/lib64:"
    plan = plan_for(tmp_path, {"LD_LIBRARY_PATH": original}, prefix=str(env), ld_mode="prefix")
    assert plan.environ["LD_LIBRARY_PATH"] == f"{lib}:/usr/local/nvidia/lib64:/usr/local/cuda/lib64"
    assert plan.environ["MA_LAUNCH_ORIG_LD_LIBRARY_PATH"] == original
    plan = plan_for(tmp_path, {}, prefix=str(env), ld_mode="prefix")
    assert plan.environ["LD_LIBRARY_PATH"] == lib
    plan = plan_for(tmp_path, {"LD_LIBRARY_PATH": "/x"}, prefix=str(env), ld_mode="off")
    assert plan.environ["LD_LIBRARY_PATH"] == "/x"
    assert "MA_LAUNCH_ORIG_LD_LIBRARY_PATH" not in plan.environ


def test_bad_ld_mode(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        plan_for(tmp_path, {}, ld_mode="everything")


def test_path_helpers_never_make_empty_entries() -> None:
    assert split_path("a::b:") == ["a", "b"]
    assert prepend_entries("", ["x"]) == "x"
    assert prepend_entries(":x::y:", ["x"]) == "x:y"


# --- python variables, workdir, argv ------------------------------------------------------------


def test_python_variables_respect_the_user(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, {"LANG": "C"})
    assert plan.environ["PYTHONUNBUFFERED"] == "1"
    assert plan.environ["PYTHONIOENCODING"] == "utf-8"
    plan = plan_for(tmp_path, {"PYTHONUNBUFFERED": "0", "LANG": "en_US.UTF-8", "LC_ALL": "POSIX"})
    assert plan.environ["PYTHONUNBUFFERED"] == "0"
    plan = plan_for(tmp_path, {"PYTHONUNBUFFERED": ""})  # empty means unset to Python
    assert plan.environ["PYTHONUNBUFFERED"] == "1"
    assert plan.environ["PYTHONIOENCODING"] == "utf-8"
    plan = plan_for(tmp_path, {"LANG": "C.UTF-8", "PYTHONIOENCODING": "latin-1"})
    assert plan.environ["PYTHONIOENCODING"] == "latin-1"
    plan = plan_for(tmp_path, {"LANG": "C.UTF-8"})
    assert "PYTHONIOENCODING" not in plan.environ


def test_workdir_default_and_problems(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    plan = build_plan(
        Request(command=("true",)),
        {"MA_HOME": str(home), "PATH": "/bin"},
        "/",
        script_runner=run_bash_program,
    )
    assert plan.workdir == str(home) and plan.environ["PWD"] == str(home)
    plan = build_plan(Request(command=("true",)), {"PATH": "/bin"}, "/", script_runner=run_bash_program)
    assert plan.workdir == "/home/ma-user"
    plan = plan_for(tmp_path, {}, workdir=str(tmp_path / "missing"))
    assert isinstance(plan.problems[0], NotFoundError) and "--workdir" in (plan.problems[0].hint or "")
    (tmp_path / "file").touch()
    plan = plan_for(tmp_path, {}, workdir=str(tmp_path / "file"))
    assert "not a directory" in plan.problems[0].message
    with pytest.raises(UsageError):
        plan_for(tmp_path, {}, workdir="")


def test_command_lookup_on_the_new_path(tmp_path: Path) -> None:
    env = make_env(tmp_path / "e")
    write_exe(env / "bin" / "only-in-env", "#!/bin/sh\n")
    plan = plan_for(tmp_path, {}, prefix=str(env), command=("only-in-env",))
    assert plan.program == str(env / "bin" / "only-in-env") and not plan.problems
    plan = plan_for(tmp_path, {}, command=("no-such-command-xyz",))
    assert isinstance(plan.problems[0], CommandNotFound)
    (tmp_path / "work" / "script.sh").write_text("echo\n")
    plan = plan_for(tmp_path, {}, command=("./script.sh",))
    assert isinstance(plan.problems[0], CommandNotExecutable)


def test_empty_command(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no command"):
        plan_for(tmp_path, {}, command=())
    with pytest.raises(UsageError, match="empty"):
        plan_for(tmp_path, {}, command=(), shell_line="  ")


def test_shell_line_appends_quoted_args(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, {}, command=("--data_url=/a b", "it's"), shell_line="cd code && bash run.sh")
    assert plan.argv[1:] == ("-c", "cd code && bash run.sh '--data_url=/a b' 'it'\"'\"'s'")
    assert os.path.basename(plan.argv[0]) in ("bash", "sh")


def test_conda_run_composition(tmp_path: Path) -> None:
    root = make_root(tmp_path / "conda", ("py",), conda=True)
    plan = plan_for(
        tmp_path, {"ANACONDA_DIR": str(root)}, name="py", conda_run=True, command=("python", "x.py")
    )
    assert plan.argv == (
        str(root / "bin" / "conda"),
        "run",
        "--no-capture-output",
        "-n",
        "py",
        "python",
        "x.py",
    )
    assert "CONDA_PREFIX" not in plan.environ  # conda activates; we do not do it twice
    bare = make_root(tmp_path / "bare", ("py",))
    with pytest.raises(UnavailableError, match="needs conda"):
        plan_for(tmp_path, {"ANACONDA_DIR": str(bare)}, name="py", conda_run=True)
    with pytest.raises(UsageError):
        plan_for(tmp_path, {}, conda_run=True)


def test_relative_script_warning(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, {}, command=("python", "-u", "train.py"))
    assert any("train.py does not exist" in w for w in plan.warnings)
    (tmp_path / "work" / "train.py").touch()
    plan = plan_for(tmp_path, {}, command=("python", "-u", "train.py"))
    assert not plan.warnings


def test_line_buffered_wraps_only_non_python(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, {}, command=("cat",), line_buffered=True)
    assert os.path.basename(plan.argv[0]) == "stdbuf" and plan.argv[1:4] == ("-oL", "-eL", "cat")
    plan = plan_for(tmp_path, {}, command=("python3", "-c", "pass"), line_buffered=True)
    assert plan.argv[0] == "python3"
    assert split_path(None) == []
