"""What is known about particular sonames: which ones the platform's driver provides at run time (never
in an image, so never a reason to warn), and hints for the ones a toolkit provides."""

from __future__ import annotations

#: Name prefixes of the libraries of the GPU/NPU drivers that the platform mounts into the container.
_DRIVER_PREFIXES = ("libcuda.so", "libcudadebugger.so", "libnvcuvid.so", "libnvidia-", "libascend_hal.so")

_HINTS = {
    "libascendcl.so": "it comes with the Ascend CANN toolkit; source its set_env.sh",
    "libhccl.so": "it comes with the Ascend CANN toolkit; source its set_env.sh",
}


def is_driver_soname(name: str) -> bool:
    """Whether ``name`` is a library of the driver the platform mounts (``libcuda.so.1``,
    ``libnvidia-ml.so.1``, the Ascend driver's ``libascend_hal.so``)."""
    return name.startswith(_DRIVER_PREFIXES)


def hint_for(name: str) -> str:
    """What to do about a missing ``name``, or ``""``."""
    return _HINTS.get(name, "")
