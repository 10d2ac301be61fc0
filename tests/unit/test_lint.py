from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from launcher.modelarts.lint import LintWarning, lint
from launcher.modelarts.platform import LOCAL, Platform
from launcher.modelarts.shellwords import split_commands, tokenize

V2 = Platform("v2", ("MA_VJ_NAME",))
V1 = Platform("v1", ("DLS_TASK_INDEX",))
JOB_DIR = "/home/ma-user/modelarts/user-job-dir"

# The shapes of modelarts.md's "Real boot commands" that are correct as they are.
GOOD_LINES = [
    "python ${MA_JOB_DIR}/demo-code/train.py",
    "bash ${MA_JOB_DIR}/demo-code/main.sh",
    "/home/ma-user/anaconda3/envs/python-3.7.10/bin/python "
    "/home/ma-user/modelarts/user-job-dir/code/train.py",
    "export PATH=/home/ma-user/anaconda3/envs/python-3.7.10/bin:$PATH; "
    "python /home/ma-user/modelarts/user-job-dir/code/train.py",
    "cd /home/ma-user/ddp_demo && sh run_ddp.sh",
    "python train.py                                   # relative: depends on the working directory",
    "python $MA_JOB_DIR/mindone/tools/modelarts/run_ascend/run_ascend.py "
    "python PATH/TO/train.py --config cfg.yaml",
    "source /home/ma-user/anaconda3/bin/activate "
    "/home/ma-user/anaconda3/envs/PyTorch-2.7.1 && python train.py",
    # and more good shapes
    "/home/ma-user/anaconda3/bin/conda run --no-capture-output -n python-3.7.10 python train.py",
    "conda run -s -n env python train.py",
    "conda run --live-stream -n env python train.py",
    "python -m torch.distributed.run --nproc_per_node 8 train.py",
    "python -c 'import sys; print(sys.path)' && python -u train.py 2>&1 | tee log.txt",
    "PYTHONUNBUFFERED=1 exec python train.py",
    "bash -c 'python train.py'",
    "python train.py > out.log",
]


def codes(warnings: list[LintWarning]) -> list[str]:
    return [w.code for w in warnings]


def run(
    line: str,
    workdir: Path,
    *,
    platform: Platform = V2,
    environ: dict[str, str] | None = None,
    names: tuple[str, ...] = (),
) -> list[LintWarning]:
    return lint(
        [],
        shell_line=line,
        environ=environ or {},
        platform=platform,
        workdir=str(workdir),
        user_env_names=names,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text("")
    (tmp_path / "run.sh").write_text("")
    return tmp_path


@pytest.mark.parametrize("line", GOOD_LINES)
@pytest.mark.parametrize("environ", [{}, {"MA_JOB_DIR": JOB_DIR, "HOME": "/home/ma-user"}])
def test_good_lines_are_silent(line: str, environ: dict[str, str], workdir: Path) -> None:
    assert run(line, workdir, environ=environ) == []
    assert run(line, workdir, environ=environ, platform=V1) == []


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("bash ${MA_JOB_DIR}/algorithm/bootfile.py", "bash-runs-python"),
        ("sh -x train.py", "bash-runs-python"),
        ("cd $MA_JOB_DIR/code; python3 monitor.py --id 3 &", "background"),
        ("python train.py & python train.py", "background"),
        ("conda activate myenv && python train.py", "conda-activate"),
        ("/home/ma-user/anaconda3/bin/conda run -n python-3.7.10 python train.py", "conda-run-captures"),
        ("bash /home/work/run_train.sh python /home/work/user-job-dir/new/train.py", "run-train-sh"),
        ("python missing.py", "missing-script"),
        ("bash scripts/missing.sh", "missing-script"),
        ("./missing.sh --x", "missing-script"),
        ("source ./missing_env.sh && python train.py", "missing-script"),
        ("export MA_MY_SETTING=1; python train.py", "ma-variable"),
        ("MA_FOO=1 python train.py", "ma-variable"),
        ("bash -c 'conda activate x'", "conda-activate"),
        ("nohup python missing.py", "missing-script"),
        ("env -u X FOO=1 python missing.py", "missing-script"),
    ],
)
def test_bad_lines(line: str, code: str, workdir: Path) -> None:
    warnings = run(line, workdir)
    assert codes(warnings) == [code]
    for w in warnings:
        assert w.message and w.hint
        assert "\n" not in w.message and "\n" not in w.hint


def test_conda_activate_hint_names_ma_launch(workdir: Path) -> None:
    [w] = run("conda activate x; python train.py", workdir)
    assert "ma-launch -n ENV --" in w.hint


def test_background_message(workdir: Path) -> None:
    [w] = run("python train.py &", workdir)
    assert "ends the line" in w.message and "python train.py" in w.message
    [w] = run("python train.py & python train.py", workdir)
    assert "follows" in w.message


def test_run_train_sh_only_on_v2(workdir: Path) -> None:
    line = "bash /home/work/run_train.sh python /home/work/user-job-dir/new/train.py"
    assert run(line, workdir, platform=V1) == []
    assert run(line, workdir, platform=LOCAL) == []


def test_missing_script_follows_cd(workdir: Path) -> None:
    sub = workdir / "code"
    sub.mkdir()
    (sub / "main.py").write_text("")
    assert run("cd code && python main.py", workdir) == []
    assert codes(run("cd code && python train.py", workdir)) == ["missing-script"]
    assert codes(run("python main.py", workdir)) == ["missing-script"]
    # a directory that does not exist yet (or cannot be resolved) makes later paths unknown
    assert run("cd later && python whatever.py", workdir) == []
    assert run("cd $NOPE && python whatever.py", workdir) == []
    assert run("cd - && python whatever.py", workdir) == []


def test_variables_expanded_for_paths(workdir: Path) -> None:
    environ = {"CODE": "sub"}
    assert codes(run("python $CODE/x.py", workdir, environ=environ)) == ["missing-script"]
    (workdir / "sub").mkdir()
    (workdir / "sub" / "x.py").write_text("")
    assert run("python ${CODE}/x.py", workdir, environ=environ) == []
    assert run("python $UNKNOWN/x.py", workdir) == []
    assert run("python *.py", workdir) == []


def test_python_options(workdir: Path) -> None:
    assert run("python -u -W ignore train.py", workdir) == []
    assert codes(run("python -u -X dev nope.py", workdir)) == ["missing-script"]
    assert run("python -m pkg.nope", workdir) == []
    assert run("python -mpkg", workdir) == []
    assert run("python3.10 -c 'print(1)'", workdir) == []
    assert run("python", workdir) == []


def test_ma_variables_from_user(workdir: Path) -> None:
    warnings = run("python train.py", workdir, names=("MA_X", "FOO", "MA_LAUNCH_ENV", "MA_X"))
    assert codes(warnings) == ["ma-variable"]
    assert "MA_X" in warnings[0].message
    assert run("export MA_LAUNCH_NAME=x PATH=/x:$PATH; python train.py", workdir) == []


def test_unbalanced_quotes_tolerated(workdir: Path) -> None:
    assert codes(run('python missing.py "unterminated', workdir)) == ["missing-script"]
    assert run("python train.py 'oops", workdir) == []
    assert tokenize('echo "a') == ["echo", "a"]


def test_split_commands() -> None:
    tokens = tokenize("a x && b || c | d > log 2>&1; e &")
    assert split_commands(tokens) == [
        (["a", "x"], "&&"),
        (["b"], "||"),
        (["c"], "|"),
        (["d", "2"], ";"),
        (["e"], "&"),
    ]
    assert split_commands(tokenize("a;b")) == [(["a"], ";"), (["b"], "")]


def test_argv_mode(workdir: Path) -> None:
    def run_argv(argv: list[str], **kw: object) -> list[str]:
        return codes(lint(argv, shell_line=None, environ={}, platform=V2, workdir=str(workdir), **kw))  # type: ignore[arg-type]

    assert run_argv(["python", "train.py", "--lr", "0.1"]) == []
    assert run_argv(["python", "nope.py"]) == ["missing-script"]
    assert run_argv(["bash", "train.py"]) == ["bash-runs-python"]
    assert run_argv(["python", "train.py", "&"]) == ["background"]
    assert run_argv(["conda", "run", "-n", "x", "python", "train.py"]) == ["conda-run-captures"]
    assert run_argv(["bash", "-c", "conda activate x; python nope.py"]) == [
        "conda-activate",
        "missing-script",
    ]
    assert run_argv(["./run.sh"]) == []
    assert run_argv(["bin/nope"]) == ["missing-script"]
    assert run_argv(["python", "train.py"], user_env_names=["MA_SECRET"]) == ["ma-variable"]
    # a `;` inside an argument is just text in argv mode
    assert run_argv(["python", "train.py", "a;conda activate x"]) == []
    assert run_argv([]) == []


def test_several_rules_on_one_line(workdir: Path) -> None:
    line = "conda activate x && bash boot.py &"
    assert sorted(codes(run(line, workdir))) == sorted(
        ["background", "conda-activate", "bash-runs-python", "missing-script"]
    )


@pytest.mark.parametrize("python", ["python3.7m", "pypy3", "pypy", "/opt/conda/bin/python3.10"])
def test_every_python_name_is_checked(python: str, workdir: Path) -> None:
    """core.programs decides what is Python (the old regex here missed pypy; the one in torchrun missed
    python3.7m)."""
    assert codes(run(f"{python} missing.py", workdir)) == ["missing-script"]
    assert run(f"{python} train.py", workdir) == []
    # not interpreters: their first argument is not a script
    assert run("python3-config --includes", workdir) == []
    assert run("pythonw missing.py", workdir) == []


def test_unresolvable_dollars(workdir: Path) -> None:
    environ = {"A": "sub", "B": "$X", "C": "~"}
    for word in ("$1/x.py", "${A-B}/x.py", "${A/x.py", "${}/x.py", "x$.py", "$B/x.py", "$C/x.py", "`A`/x.py"):
        assert run(f"python {word}", workdir, environ=environ) == [], word
    assert codes(run("python ${A}/$A.py", workdir, environ=environ)) == ["missing-script"]


@pytest.mark.parametrize(
    ("argv", "escaped"),
    [
        (["python", "a\nb.py"], "a\\nb.py"),
        (["bash", "x\r.py"], "x\\r.py"),
        (["./run\x1b.sh"], "./run\\x1b.sh"),
        (["python", "\udcff.py"], "\\udcff.py"),
    ],
)
def test_words_in_messages_stay_on_one_line(argv: list[str], escaped: str, workdir: Path) -> None:
    warnings = lint(argv, shell_line=None, environ={}, platform=V2, workdir=str(workdir))
    assert warnings
    for w in warnings:
        assert escaped in w.message
        assert w.message.isprintable() and w.hint.isprintable()


def test_escaped_background_and_variable_names(workdir: Path) -> None:
    background, missing = run("python 'train\n.py' &", workdir)
    assert background.code == "background" and "python train\\n.py" in background.message
    assert missing.code == "missing-script" and "train\\n.py does not exist" in missing.message
    [w] = run("python train.py", workdir, names=("MA_X\nY",))
    assert w.code == "ma-variable" and "MA_X\\nY" in w.message and w.message.isprintable()


shell_text = st.text(alphabet=st.sampled_from("abpy.thon/ $`\\'\"&|;()<>{}-=\n\t²\ud800\udcff"), max_size=60)


@given(
    st.one_of(st.text(max_size=60), shell_text),
    st.dictionaries(st.text(max_size=4), st.text(max_size=8), max_size=3),
    st.lists(st.text(max_size=8), max_size=3),
)
def test_any_line_gives_one_line_warnings(line: str, environ: dict[str, str], names: list[str]) -> None:
    for warnings in (
        lint([], shell_line=line, environ=environ, platform=V2, workdir="/nonexistent", user_env_names=names),
        lint(line.split(" "), shell_line=None, environ=environ, platform=V1, workdir="/tmp\n"),
    ):
        for w in warnings:
            assert w.message.isprintable() and w.hint.isprintable(), w
