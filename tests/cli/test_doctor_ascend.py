"""doctor's Ascend checks on synthetic image roots: the CANN toolkit and its version file, torch_npu's need
for it (gcc-built stand-ins with real DT_NEEDED entries), a baked-in NPU driver, and ``ip`` for msrun."""

from __future__ import annotations

from pathlib import Path

import pytest
from cannkit import make_toolkit, make_torch_npu
from imagekit import PYVER, ImageRoot, by_id, report, write
from needs import need_root

TOOLKIT = "/usr/local/Ascend/ascend-toolkit"
ENV_ID = "/home/ma-user/anaconda3/envs/py311"


@pytest.fixture
def image(tmp_path: Path) -> ImageRoot:
    need_root()
    return ImageRoot(tmp_path / "rootfs")


def site(image: ImageRoot) -> Path:
    return image.env_prefix / "lib" / f"python{PYVER}" / "site-packages"


def test_an_image_without_ascend_parts_gets_only_the_driver_check(
    image: ImageRoot, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = report(image, capsys)
    checks = by_id(data)
    assert checks["ascend-driver"]["status"] == "pass"
    assert not [c for c in checks if c in ("cann", "ip") or c.startswith("torch-npu")]
    assert code == 0


def test_toolkit_with_its_version_and_torch_npu_pass(
    image: ImageRoot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_toolkit(TOOLKIT, image.p(TOOLKIT))
    make_torch_npu(site(image), tmp_path / "stubs")
    code, data = report(image, capsys)
    checks = by_id(data)
    assert checks["cann"]["status"] == "pass", checks["cann"]
    assert checks["cann"]["summary"] == (
        f"CANN toolkit 8.0.RC3 at {TOOLKIT} ({TOOLKIT}/latest/x86_64-linux/ascend_toolkit_install.info); "
        f"ma-launch sources {TOOLKIT}/set_env.sh"
    )
    npu = checks[f"torch-npu:{ENV_ID}"]
    assert npu["status"] == "pass", npu
    assert npu["details"]["needs"] == ["libascendcl.so", "libhccl.so"]  # type: ignore[index]
    assert checks[f"ld:{ENV_ID}"]["status"] == "pass", checks[f"ld:{ENV_ID}"]  # CANN provides them
    assert code == 0


def test_torch_npu_without_cann_fails_with_the_reason(
    image: ImageRoot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_torch_npu(site(image), tmp_path / "stubs")
    code, data = report(image, capsys)
    npu = by_id(data)[f"torch-npu:{ENV_ID}"]
    assert npu["status"] == "fail"
    assert npu["summary"] == (
        "env py311: torch_npu needs libascendcl.so, libhccl.so from the CANN toolkit, and the image has "
        "none: even `import torch` fails (torch loads torch_npu when it is imported)"
    )
    assert "cann" not in by_id(data)
    assert code == 1


def test_a_toolkit_without_a_version_file_or_the_libraries(
    image: ImageRoot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_toolkit(TOOLKIT, image.p(TOOLKIT), version=None)
    for lib in image.p(TOOLKIT).glob("*/lib64/libhccl.so"):
        lib.unlink()
    make_torch_npu(site(image), tmp_path / "stubs")
    _code, data = report(image, capsys)
    checks = by_id(data)
    assert checks["cann"]["status"] == "warn" and "no file states its version" in str(
        checks["cann"]["summary"]
    )
    npu = checks[f"torch-npu:{ENV_ID}"]
    assert npu["status"] == "fail" and npu["details"]["missing"] == ["libhccl.so"]  # type: ignore[index]


def test_the_toolkit_is_found_through_ascend_toolkit_home(
    image: ImageRoot, capsys: pytest.CaptureFixture[str]
) -> None:
    make_toolkit("/opt/cann", image.p("/opt/cann"))
    image.env_vars["ASCEND_TOOLKIT_HOME"] = "/opt/cann/latest"
    _code, data = report(image, capsys)
    assert by_id(data)["cann"]["details"]["set_env"] == "/opt/cann/set_env.sh"  # type: ignore[index]


def test_a_baked_in_driver_fails(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    write(image.p("/usr/local/Ascend/driver/lib64/driver/libascend_hal.so"), "not a driver\n")
    write(image.p("/usr/local/Ascend/driver/version.info"), "Version=24.1.0\n")
    code, data = report(image, capsys)
    driver = by_id(data)["ascend-driver"]
    assert driver["status"] == "fail"
    assert (
        driver["summary"]
        == "an Ascend driver is baked into the image at /usr/local/Ascend/driver (2 entries)"
    )
    assert (
        driver["advice"]
        == "remove it: the platform mounts the node's driver at /usr/local/Ascend/driver at run time"
    )
    assert code == 1


def test_mindspore_needs_ip(image: ImageRoot, capsys: pytest.CaptureFixture[str]) -> None:
    write(site(image) / "mindspore" / "__init__.py", "")
    _code, data = report(image, capsys)
    ip = by_id(data)["ip"]
    assert ip["status"] == "warn" and "`ip -j addr`" in str(ip["summary"])
    assert ip["advice"] == "install iproute2 in the image (apt-get install iproute2, or yum install iproute)"
    write(image.p("/usr/sbin/ip"), "#!/bin/sh\n", 0o755)
    _code, data = report(image, capsys)
    assert by_id(data)["ip"]["status"] == "pass"
    assert by_id(data)["ip"]["details"]["ip"] == "/usr/sbin/ip"  # type: ignore[index]
