"""``--source FILE`` and ``--cann auto|off`` as data: which files are sourced (with the env's activate.d
scripts, by one real bash), what each changed and where that is attributed, and when CANN's set_env.sh is
left alone. The toolkit is the fake of :mod:`cannkit`, found through ``ASCEND_TOOLKIT_HOME``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cannkit import make_toolkit
from condakit import make_env

from launcher.cli import options, values
from launcher.core.build import build_plan
from launcher.core.request import Request
from launcher.errors import AccessError, NotFoundError
from launcher.run.activate import run_bash_program


@pytest.fixture
def toolkit(tmp_path: Path) -> Path:
    make_toolkit(str(tmp_path / "cann"))
    return tmp_path / "cann"


def plan_for(tmp_path: Path, environ: dict[str, str], **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("command", ("true",))
    kw.setdefault("workdir", str(tmp_path))
    base = {"PATH": "/usr/bin:/bin", **environ}
    return build_plan(Request(**kw), base, str(tmp_path), script_runner=run_bash_program)  # type: ignore[arg-type]


def test_cann_is_sourced_and_its_changes_attributed(tmp_path: Path, toolkit: Path) -> None:
    plan = plan_for(tmp_path, {"ASCEND_TOOLKIT_HOME": f"{toolkit}/latest"})
    label = f"{toolkit}/set_env.sh (CANN toolkit, --cann auto)"
    env = plan.environ
    assert env["ASCEND_HOME_PATH"] == f"{toolkit}/latest"
    assert env["ASCEND_OPP_PATH"] == f"{toolkit}/latest/opp"
    # The script leaves an empty entry when LD_LIBRARY_PATH was unset: it is dropped.
    assert env["LD_LIBRARY_PATH"] == f"{toolkit}/latest/lib64:{toolkit}/latest/lib64/plugin/opskernel"
    assert env["PATH"] == f"{toolkit}/latest/bin:/usr/bin:/bin"
    assert env["PYTHONPATH"] == f"{toolkit}/latest/python/site-packages"
    assert plan.source_of("ASCEND_OPP_PATH") == label
    assert plan.source_of("LD_LIBRARY_PATH") == label + " (empty entries dropped)"
    assert (
        f"sourced {label}: changed ASCEND_AICPU_PATH, ASCEND_HOME_PATH, ASCEND_OPP_PATH, LD_LIBRARY_PATH, "
        "PATH, PYTHONPATH, TOOLCHAIN_HOME" in plan.decisions
    )


def test_cann_already_active_or_another_installation_is_left_alone(tmp_path: Path, toolkit: Path) -> None:
    home = {"ASCEND_TOOLKIT_HOME": f"{toolkit}/latest"}
    plan = plan_for(tmp_path, {**home, "ASCEND_HOME_PATH": f"{toolkit}/8.0.RC3"})
    assert not [c for c in plan.changes if c.kind == "script"]
    assert (
        f"CANN toolkit: {toolkit}/set_env.sh not sourced: already active (ASCEND_HOME_PATH={toolkit}/8.0.RC3)"
        in plan.decisions
    )
    plan = plan_for(tmp_path, {**home, "ASCEND_HOME_PATH": "/opt/other-cann"})
    assert plan.environ["ASCEND_HOME_PATH"] == "/opt/other-cann"
    assert any("ASCEND_HOME_PATH=/opt/other-cann names another installation" in d for d in plan.decisions)
    plan = plan_for(tmp_path, home, cann="off")
    assert "ASCEND_HOME_PATH" not in plan.environ
    assert not any("CANN" in d for d in plan.decisions)


def test_source_files_run_after_the_env_and_cann_in_one_bash(tmp_path: Path, toolkit: Path) -> None:
    env = make_env(tmp_path / "env", scripts={"a.sh": "export FROM_ENV=1\nexport PID_ENV=$$\n"})
    (tmp_path / "mine.sh").write_text(
        'export SEEN="$FROM_ENV:$ASCEND_OPP_PATH"\nexport PID_MINE=$$\n'
        'export LD_LIBRARY_PATH=/mine:"$LD_LIBRARY_PATH"\n'
    )
    plan = plan_for(
        tmp_path, {"ASCEND_TOOLKIT_HOME": f"{toolkit}/latest"}, prefix=str(env), sources=("mine.sh",)
    )
    mine = str(tmp_path / "mine.sh")
    assert plan.environ["SEEN"] == f"1:{toolkit}/latest/opp"
    assert plan.environ["PID_ENV"] == plan.environ["PID_MINE"]  # one bash
    assert plan.source_of("SEEN") == f"{mine} (--source)"
    assert plan.source_of("FROM_ENV") == str(env / "etc" / "conda" / "activate.d" / "a.sh")
    assert plan.environ["LD_LIBRARY_PATH"].startswith(f"/mine:{toolkit}/latest/lib64:")
    order = [d.split(":")[0] for d in plan.decisions if d.startswith("sourced")]
    assert order == [
        "sourced 1 activate.d script(s) with bash",
        f"sourced {toolkit}/set_env.sh (CANN toolkit, --cann auto)",
        f"sourced {mine} (--source)",
    ]


def test_source_without_an_env(tmp_path: Path) -> None:
    (tmp_path / "a.sh").write_text("export A=1\n")
    plan = plan_for(tmp_path, {}, sources=(str(tmp_path / "a.sh"),), cann="off")
    assert plan.environ["A"] == "1" and plan.choice.env is None


def test_source_file_problems(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"--source nope\.sh: no such file"):
        plan_for(tmp_path, {}, sources=("nope.sh",))
    with pytest.raises(NotFoundError, match="is not a file"):
        plan_for(tmp_path, {}, sources=(str(tmp_path),))
    if os.geteuid() != 0:
        (tmp_path / "locked.sh").write_text("")
        (tmp_path / "locked.sh").chmod(0)
        with pytest.raises(AccessError):
            plan_for(tmp_path, {}, sources=("locked.sh",))


def test_source_option_and_variable() -> None:
    parsed = options.parse(["--source", "a.sh", "--source=b.sh", "--cann", "off", "--", "x"], {})
    request = values.request(parsed)
    assert (request.sources, request.cann) == (("a.sh", "b.sh"), "off")
    parsed = options.parse(["x"], {"MA_LAUNCH_SOURCE": "/a.sh:/b,c.sh", "MA_LAUNCH_CANN": "off"})
    assert values.request(parsed).sources == ("/a.sh", "/b,c.sh")
    assert values.request(options.parse(["x"], {})).cann == "auto"


def test_the_cann_libraries_are_one_warning_even_when_loaded_only_maybe() -> None:
    """torch loads torch_npu whenever it is imported: its CANN libraries warn (once, together) even where
    the analysis cannot tell the program loads them; other libraries keep their own rules."""
    from launcher.ld import wording
    from launcher.ld.result import LdAnalysis, Unresolved

    npu = ("/env/site-packages/torch_npu/lib/libtorch_npu.so",)
    analysis = LdAnalysis(
        (),
        (
            Unresolved("libascendcl.so", npu, certain=False),
            Unresolved("libhccl.so", (*npu, "/env/x.so"), certain=False),
            Unresolved("libplugin.so.1", ("/env/plugin.so",), certain=False),
            Unresolved("libneeded.so.2", ("/env/bin/prog",)),
        ),
        4,
        False,
    )
    assert wording.warnings(analysis) == [
        "libascendcl.so, libhccl.so are not found (needed by "
        "/env/site-packages/torch_npu/lib/libtorch_npu.so), which needs the CANN toolkit: --cann auto or "
        "--source …/set_env.sh; the launch continues",
        "libneeded.so.2 is not found by the loader and not provided by the env (needed by /env/bin/prog); "
        "the launch continues",
    ]
    assert "CANN" not in " ".join(wording.notes(analysis)) and "libhccl" not in " ".join(
        wording.notes(analysis)
    )
    assert "libplugin.so.1" in " ".join(wording.notes(analysis))


def test_source_files_share_the_activation_deadline_and_fault_rules(tmp_path: Path) -> None:
    import time

    from launcher.errors import ConfigError, TimeoutError_

    (tmp_path / "slow.sh").write_text("sleep 30\n")
    start = time.monotonic()
    with pytest.raises(TimeoutError_, match=r"activation script .*slow\.sh did not finish"):
        plan_for(tmp_path, {}, sources=("slow.sh",), cann="off", activation_timeout=1.0)
    assert time.monotonic() - start < 10
    (tmp_path / "daemon.sh").write_text("sleep 30 &\nexport AFTER_DAEMON=1\n")
    start = time.monotonic()
    plan = plan_for(tmp_path, {}, sources=("daemon.sh",), cann="off")
    assert plan.environ["AFTER_DAEMON"] == "1" and time.monotonic() - start < 10  # the daemon holds nothing
    (tmp_path / "fails.sh").write_text("export PARTLY=1\nfalse\n")
    plan = plan_for(tmp_path, {}, sources=("fails.sh",), cann="off")
    assert plan.environ["PARTLY"] == "1"
    assert any("fails.sh failed (status 1)" in w for w in plan.warnings)
    with pytest.raises(ConfigError, match=r"fails\.sh failed"):
        plan_for(tmp_path, {}, sources=("fails.sh",), cann="off", strict_activation=True)
