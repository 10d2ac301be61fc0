"""A fake Ascend CANN toolkit for tests: a ``set_env.sh`` shaped like the real one (it sets
``ASCEND_TOOLKIT_HOME``, ``ASCEND_HOME_PATH``, ``ASCEND_OPP_PATH``, ``ASCEND_AICPU_PATH`` and prepends to
``LD_LIBRARY_PATH``, ``PYTHONPATH`` and ``PATH``, leaving an empty entry when one was unset, as the real one
does), gcc-built ``libhccl.so``/``libascendcl.so`` in ``latest/lib64``, the version file, and a torch_npu
stand-in whose library links both.

``where`` is the toolkit's directory as the script names it (the image path); ``host`` is where its files
go on this machine (the same unless the toolkit is built inside an image root).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from elfkit import build_lib

VERSION = "8.0.RC3"
SONAMES = ("libascendcl.so", "libhccl.so")

SET_ENV = """\
# Activation of the CANN toolkit (a test's stand-in, shaped like the real script).
export ASCEND_TOOLKIT_HOME={where}/latest
export LD_LIBRARY_PATH=${{ASCEND_TOOLKIT_HOME}}/lib64:${{ASCEND_TOOLKIT_HOME}}/lib64/plugin/opskernel:\
${{LD_LIBRARY_PATH}}
export PYTHONPATH=${{ASCEND_TOOLKIT_HOME}}/python/site-packages:${{PYTHONPATH}}
export PATH=${{ASCEND_TOOLKIT_HOME}}/bin:${{PATH}}
export ASCEND_AICPU_PATH=${{ASCEND_TOOLKIT_HOME}}
export ASCEND_OPP_PATH=${{ASCEND_TOOLKIT_HOME}}/opp
export TOOLCHAIN_HOME=${{ASCEND_TOOLKIT_HOME}}/toolkit
export ASCEND_HOME_PATH=${{ASCEND_TOOLKIT_HOME}}
"""

ATB_SET_ENV = """\
# Activation of the CANN ATB add-on (a test's stand-in).
export ATB_HOME_PATH={where}/latest/atb/cxx_abi_1
export LD_LIBRARY_PATH=${{ATB_HOME_PATH}}/lib:${{LD_LIBRARY_PATH}}
"""


def make_toolkit(where: str, host: Optional[Path] = None, *, version: Optional[str] = VERSION) -> Path:
    """The toolkit at ``where`` (files at ``host``): set_env.sh, ``latest -> VERSION``, the two CANN
    libraries and (unless ``version`` is None) ``latest/x86_64-linux/ascend_toolkit_install.info``."""
    root = host or Path(where)
    real = root / (version or "8.0.0")
    (real / "lib64").mkdir(parents=True, exist_ok=True)
    for sub in ("bin", "opp", "python/site-packages", "x86_64-linux"):
        (real / sub).mkdir(parents=True, exist_ok=True)
    if not (root / "latest").exists():
        os.symlink(real.name, root / "latest")
    for soname in SONAMES:
        build_lib(str(real / "lib64" / soname), soname, exports=[f"{soname.split('.')[0][3:]}_init"])
    if version is not None:
        info = f"package_name=Ascend-cann-toolkit\nversion={version}\narch=x86_64\n"
        (real / "x86_64-linux" / "ascend_toolkit_install.info").write_text(info)
    (root / "set_env.sh").write_text(SET_ENV.format(where=where))
    return root / "set_env.sh"


def make_atb(where: str, host: Optional[Path] = None) -> Path:
    """The ATB add-on's set_env.sh at ``where`` (files at ``host``)."""
    root = host or Path(where)
    (root / "latest" / "atb" / "cxx_abi_1" / "lib").mkdir(parents=True, exist_ok=True)
    (root / "set_env.sh").write_text(ATB_SET_ENV.format(where=where))
    return root / "set_env.sh"


def make_torch_npu(site: Path, stubs: Path) -> Path:
    """A torch_npu stand-in in ``site``: a package whose ``lib/libtorch_npu.so`` needs libhccl.so and
    libascendcl.so (linked against stubs built in ``stubs``, which the caller keeps out of the loader's
    way)."""
    needs = [
        build_lib(str(stubs / soname), soname, exports=[f"{soname.split('.')[0][3:]}_init"])
        for soname in SONAMES
    ]
    package = site / "torch_npu"
    (package / "lib").mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    calls = [f"{soname.split('.')[0][3:]}_init" for soname in SONAMES]
    build_lib(str(package / "lib" / "libtorch_npu.so"), "libtorch_npu.so", calls=calls, needs=needs)
    return package
