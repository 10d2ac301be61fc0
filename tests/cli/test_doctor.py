"""``ma-launch doctor`` on synthetic image roots: each rule broken once, a good root, JSON, exit codes,
and the permission probes run as a real unprivileged user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from imagekit import GID, UID, ImageRoot, by_id, chown_tree, report, status, write
from launchkit import REPO
from needs import need, need_root, require
from unprivileged import public_tmp

from launcher.cli.main import run
from launcher.core.conda import Env
from launcher.image.checks_files import scan_tree
from launcher.image.checks_python import check_python
from launcher.image.checks_runtime import check_ma_launch
from launcher.image.checks_user import check_home
from launcher.image.context import Context, make_context
from launcher.image.users import User, default_user
from launcher.modelarts.facts import GB
from launcher.run.probe import probe_writable


@pytest.fixture
def image(tmp_path: Path) -> ImageRoot:
    need_root()
    return ImageRoot(tmp_path / "rootfs")


ENV_ID = "/home/ma-user/anaconda3/envs/py311"


# ---------------------------------------------------------------- the good root


def test_good_root_passes_everything(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = report(image, capsys)
    bad = {c["id"]: (c["status"], c["summary"]) for c in by_id(data).values() if c["status"] != "pass"}
    assert bad == {}
    assert code == 0
    assert data["ok"] is True


def test_table_output_and_exit_code_0(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["doctor", "--root", str(image.root), *image.image_env_args()])
    out = capsys.readouterr().out
    assert code == 0
    assert "PASS  user" in out
    assert out.rstrip().endswith("0 failed")


def test_json_schema(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    image.add_driver()
    _code, data = report(image, capsys)
    assert set(data) == {"version", "root", "checks", "counts", "ok"}
    assert data["version"] == 1
    assert data["root"] == str(image.root)
    assert isinstance(data["checks"], list)
    for check in data["checks"]:
        assert set(check) == {"id", "status", "summary", "advice", "details"}
        assert check["status"] in ("pass", "warn", "fail")
        assert isinstance(check["summary"], str) and check["summary"]
        assert isinstance(check["advice"], str)
        assert isinstance(check["details"], dict)
        if check["status"] != "pass":
            assert check["advice"]
    ids = [c["id"] for c in data["checks"]]
    assert len(ids) == len(set(ids))
    for expected in (
        "user",
        "home",
        "conda",
        "default-env",
        "setuid",
        "gpu-driver",
        "size",
        "sh",
        "unbuffered",
    ):
        assert expected in ids
    assert f"python:{ENV_ID}" in ids and f"ld:{ENV_ID}" in ids
    counts = data["counts"]
    assert isinstance(counts, dict)
    assert set(counts) == {"pass", "warn", "fail"}
    assert sum(counts.values()) == len(ids)
    assert data["ok"] is (counts["fail"] == 0)


def test_json_is_quiet_on_stderr(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    run(["doctor", "--root", str(image.root), "--json", *image.image_env_args()])
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- one rule broken at a time


def test_v1_user_fails(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    image.break_user_v1()
    code, data = report(image, capsys)
    check = by_id(data)["user"]
    assert check["status"] == "fail"
    assert "1101" in str(check["summary"]) and "work" in str(check["summary"])
    assert code == 1


def test_migrated_uid_1102_warns(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    image.break_user_migrated()
    _code, data = report(image, capsys)
    assert status(data, "user") == "warn"
    assert "1102" in str(by_id(data)["user"]["summary"])


def test_missing_home_fails(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    image.break_home_missing()
    code, data = report(image, capsys)
    assert status(data, "home") == "fail"
    assert code == 1


def test_root_owned_home_fails(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    image.break_home_owner()
    code, data = report(image, capsys)
    check = by_id(data)["home"]
    assert check["status"] == "fail"
    assert "not writable" in str(check["summary"])
    assert code == 1


def test_python_that_cannot_start_fails(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    image.break_python()
    code, data = report(image, capsys)
    check = by_id(data)[f"python:{ENV_ID}"]
    assert check["status"] == "fail"
    assert "does not start" in str(check["summary"])
    assert status(data, "python:/home/ma-user/anaconda3") == "pass"
    assert code == 1


def test_default_env_pointing_nowhere_fails(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    image.break_default_env()
    code, data = report(image, capsys)
    check = by_id(data)["default-env"]
    assert check["status"] == "fail"
    assert "no-such-env" in str(check["summary"])
    assert code == 1


def test_unset_default_env_warns(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    del image.env_vars["ANACONDA_DIR"], image.env_vars["DEFAULT_CONDA_ENV_NAME"]
    _code, data = report(image, capsys)
    assert status(data, "default-env") == "warn"


def test_missing_shared_library_fails(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    image.add_missing_library()
    code, data = report(image, capsys)
    check = by_id(data)[f"ld:{ENV_ID}"]
    assert check["status"] == "fail"
    assert "libmissing.so.1" in str(check["summary"])
    assert code == 1


def test_driver_sonames_only_warn_in_ld_check(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    from imagekit import compile_needing

    compile_needing(image.env_prefix / "lib" / "libuses_cuda.so", "libcuda.so.1")
    _code, data = report(image, capsys)
    check = by_id(data)[f"ld:{ENV_ID}"]
    assert check["status"] == "warn"
    assert "libcuda.so.1" in str(check["summary"])


def test_added_setuid_file_fails(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    image.add_setuid()
    code, data = report(image, capsys)
    check = by_id(data)["setuid"]
    assert check["status"] == "fail"
    assert "/usr/local/bin/helper" in str(check["summary"])
    assert code == 1


def test_setuid_baseline_file(image: ImageRoot, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    image.add_setuid()
    baseline = write(tmp_path / "baseline.txt", "# base image\n/usr/bin/passwd\n/usr/local/bin/helper\n")
    code, data = report(image, capsys, "--baseline", str(baseline))
    assert status(data, "setuid") == "pass"
    assert code == 0
    baseline.write_text("/usr/local/bin/helper\n")  # passwd is no longer known
    _code, data = report(image, capsys, "--baseline", str(baseline))
    assert "/usr/bin/passwd" in str(by_id(data)["setuid"]["summary"])


def test_baked_driver_fails(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    image.add_driver()
    code, data = report(image, capsys)
    check = by_id(data)["gpu-driver"]
    assert check["status"] == "fail"
    assert "/usr/lib/x86_64-linux-gnu/libcuda.so.1" in str(check["summary"])
    assert code == 1


def test_driver_under_usr_local_nvidia_is_fine(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    write(image.p("/usr/local/nvidia/lib64/libcuda.so.1"), "mounted\n")
    write(image.p("/usr/local/cuda/lib64/stubs/libcuda.so"), "link-time stub\n")
    _code, data = report(image, capsys)
    assert status(data, "gpu-driver") == "pass"


def test_image_above_30_gb_fails(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    image.add_huge_file(31 * GB)
    code, data = report(image, capsys)
    assert status(data, "size") == "fail"
    assert code == 1


def test_image_above_15_gb_warns(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    image.add_huge_file(16 * GB)
    code, data = report(image, capsys)
    check = by_id(data)["size"]
    assert check["status"] == "warn"
    assert "9.5 GB" in str(check["advice"])
    assert code == 0


def test_size_skips_proc_sys_dev(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    with open(image.p("/proc/kcore"), "wb") as fh:
        fh.truncate(40 * GB)
    _code, data = report(image, capsys)
    assert status(data, "size") == "pass"


def test_dash_warns(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    image.use_dash()
    code, data = report(image, capsys)
    check = by_id(data)["sh"]
    assert check["status"] == "warn"
    assert "exec ma-launch" in str(check["advice"])
    assert code == 0


def test_missing_pythonunbuffered_warns(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    image.drop_unbuffered()
    _code, data = report(image, capsys)
    assert status(data, "unbuffered") == "warn"


def test_missing_ma_launch_fails(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    image.remove_ma_launch()
    code, data = report(image, capsys)
    assert status(data, "ma-launch") == "fail"
    assert code == 1


def test_ma_launch_not_reachable_by_default_user_fails(
    image: ImageRoot, capsys: pytest.CaptureFixture[str]
) -> None:
    image.lock_ma_launch()
    code, data = report(image, capsys)
    check = by_id(data)["ma-launch"]
    assert check["status"] == "fail"
    assert "/opt/ma-launch" in str(check["summary"])
    assert code == 1


# ---------------------------------------------------------------- usage and exit codes


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["doctor", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--root DIR", "--image-env KEY=VAL", "--baseline FILE", "--json"):
        assert flag in out
    assert run([]) == 2  # no command: the usage line names the subcommands
    captured = capsys.readouterr()
    assert "doctor" in captured.err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["doctor", "--no-such-flag"]) == 2
    assert run(["doctor", "--root", "/", "--image-env", "NOEQUALS"]) == 2
    err = capsys.readouterr().err
    assert "ma-launch: error: --image-env 'NOEQUALS' is not KEY=VALUE" in err
    assert "is not KEY=VALUE (hint: " in err


def test_missing_root_is_not_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["doctor", "--root", str(tmp_path / "nothing")]) == 66
    err = capsys.readouterr().err
    assert err.startswith("ma-launch: error: image root")
    assert "Traceback" not in err


def test_exit_codes_through_a_process(image: ImageRoot, tmp_path: Path) -> None:
    def code(*args: str) -> int:
        return subprocess.run(
            [sys.executable, "-m", "launcher", "doctor", *args],
            cwd=REPO,
            capture_output=True,
            check=False,
        ).returncode

    good = ["--root", str(image.root), *image.image_env_args()]
    assert code(*good) == 0
    image.add_driver()
    assert code(*good) == 1
    assert code("--bogus") == 2


# ---------------------------------------------------------------- probes as a real unprivileged user


def live_context() -> Context:
    return Context(root="/", environ={"PATH": "/usr/bin:/bin"})


def test_home_probe_as_uid_1000() -> None:
    need_root()
    need("setpriv")
    with public_tmp() as tmp:
        owned = tmp / "owned"
        owned.mkdir()
        os.chown(owned, UID, GID)
        rootonly = tmp / "rootonly"
        rootonly.mkdir(mode=0o755)
        good = check_home(live_context(), User("ma-user", UID, GID, str(owned)))
        bad = check_home(live_context(), User("ma-user", UID, GID, str(rootonly)))
    assert good.status == "pass", good
    assert good.details["method"] == "probe"
    assert bad.status == "fail", bad
    assert bad.details["method"] == "probe"
    assert "cannot create files" in bad.summary


def test_probe_writable_really_switches_user() -> None:
    need_root()
    need("setpriv")
    with public_tmp() as tmp:
        world = tmp / "world"
        world.mkdir()
        world.chmod(0o777)
        assert probe_writable(str(world), UID, GID).ok
        os.chmod(world, 0o775)  # noqa: S103 (group root only: UID 1000 with its groups cleared may not write)
        assert not probe_writable(str(world), UID, GID).ok


def test_python_probe_as_uid_1000() -> None:
    need_root()
    need("setpriv")
    system_python = "/usr/bin/python3"
    require(os.path.exists(system_python), "needs a system python readable by every user")
    with public_tmp() as tmp:
        env = tmp / "envs" / "sys"
        (env / "conda-meta").mkdir(parents=True)
        (env / "bin").mkdir()
        os.symlink(system_python, env / "bin" / "python")
        found = Env(prefix=str(env), name="sys", root=str(tmp))
        user = User("ma-user", UID, GID, "/home/ma-user")
        ok = check_python(live_context(), found, user)
        env.chmod(0o700)  # root only: the default user cannot reach bin/python
        denied = check_python(live_context(), found, user)
    assert ok.status == "pass", ok
    assert ok.details["as_uid"] == UID
    assert denied.status == "fail", denied


def test_ma_launch_probe_as_uid_1000() -> None:
    need_root()
    need("setpriv")
    with public_tmp() as tmp:
        program = write(tmp / "ma-launch", "#!/bin/sh\necho 'ma-launch 0.1.0'\n", 0o755)
        user = User("ma-user", UID, GID, "/home/ma-user")
        ok = check_ma_launch(live_context(), user, str(program))
        program.chmod(0o700)
        denied = check_ma_launch(live_context(), user, str(program))
    assert ok.status == "pass", ok
    assert "ma-launch 0.1.0" in ok.summary
    assert denied.status == "fail", denied


def test_mode_bits_for_an_unpacked_root(tmp_path: Path) -> None:
    need_root()
    image = ImageRoot(tmp_path / "rootfs")
    chown_tree(image.p("/home/ma-user"), 0, 0)
    image.p("/home/ma-user").chmod(0o777)
    check = check_home(make_context(str(image.root)), default_user(make_context(str(image.root))))
    assert check.status == "warn"  # writable through the mode bits, but not owned by 1000
    assert check.details["method"] == "static"


def test_progress_is_one_updating_line(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    ctx = Context(root=str(image.root), environ={}, progress=True)
    scan = scan_tree(ctx)
    err = capsys.readouterr().err
    assert scan.files > 10
    assert err.startswith("\rscanning: ")
    assert "\n" not in err
    assert err.endswith("\r")  # the line is wiped at the end


def test_one_walk_collects_size_setuid_and_drivers(image: ImageRoot) -> None:
    image.add_setuid()
    image.add_driver()
    scan = scan_tree(Context(root=str(image.root), environ={}))
    assert [p for p, _m in scan.setuid] == ["/usr/bin/passwd", "/usr/local/bin/helper"]
    assert scan.drivers == ["/usr/lib/x86_64-linux-gnu/libcuda.so.1"]
    assert scan.total_bytes > 0
