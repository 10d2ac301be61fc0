"""What is known about particular sonames: which ones the platform's driver provides at run time (never
in an image, so never a reason to warn), which ones the Ascend CANN toolkit provides, and hints."""

from __future__ import annotations

#: Name prefixes of the libraries of the GPU/NPU drivers that the platform mounts into the container.
_DRIVER_PREFIXES = ("libcuda.so", "libcudadebugger.so", "libnvcuvid.so", "libnvidia-", "libascend_hal.so")

#: The CANN toolkit's libraries that torch_npu (and MindSpore's Ascend build) link against; only the
#: toolkit provides them, once its set_env.sh is sourced. torch loads torch_npu whenever it is imported, so
#: a missing one is always worth a warning, and all of them together are one.
CANN_SONAMES = ("libascendcl.so", "libhccl.so")
#: What a missing CANN library needs, in the words of the warning and the end-of-job summary.
CANN_HINT = "needs the CANN toolkit: --cann auto or --source …/set_env.sh"


def is_driver_soname(name: str) -> bool:
    """Whether ``name`` is a library of the driver the platform mounts (``libcuda.so.1``,
    ``libnvidia-ml.so.1``, the Ascend driver's ``libascend_hal.so``)."""
    return name.startswith(_DRIVER_PREFIXES)


def is_cann_soname(name: str) -> bool:
    """Whether ``name`` is one of :data:`CANN_SONAMES`."""
    return name in CANN_SONAMES


def hint_for(name: str) -> str:
    """What to do about a missing ``name``, or ``""``."""
    return f"it {CANN_HINT}" if is_cann_soname(name) else ""
