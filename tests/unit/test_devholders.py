"""Processes that hold accelerator devices (:mod:`launcher.run.devholders`), read from this test process's
own ``/proc/PID/fd`` with a device directory of its own."""

from __future__ import annotations

import os
from pathlib import Path

from launcher.run.devholders import device_holders, is_accelerator


def test_accelerator_names() -> None:
    for name in ("nvidia0", "nvidia7", "nvidiactl", "nvidia-uvm", "davinci0", "davinci_manager"):
        assert is_accelerator(f"/dev/{name}")
    for path in ("/dev/null", "/dev/shm/nvidia0", "/tmp/nvidia0", "/dev/dri/card0", "/dev/hisi_hdc"):
        assert not is_accelerator(path)
    assert is_accelerator("/x/dev/nvidia0", "/x/dev") and not is_accelerator("/dev/nvidia0", "/x/dev")


def test_this_process_holding_fake_devices(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("nvidia1", "nvidiactl", "davinci3", "null"):
        (dev / name).write_text("")
    fds = [os.open(dev / name, os.O_RDONLY) for name in ("nvidiactl", "nvidia1", "nvidia1", "null")]
    try:
        holders = device_holders([os.getpid(), 999_999_999], str(dev))
        assert len(holders) == 1
        me = holders[0]
        assert me.pid == os.getpid() and me.name == Path("/proc/self/comm").read_text().strip()
        assert me.devices == (str(dev / "nvidia1"), str(dev / "nvidiactl"))
        assert device_holders([os.getpid()]) == []  # the real /dev: this process opened none of it
    finally:
        for fd in fds:
            os.close(fd)
    assert device_holders([os.getpid()], str(dev)) == []
