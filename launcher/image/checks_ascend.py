"""doctor's Ascend checks: ``ascend-driver`` (no NPU driver baked in: the platform mounts it), ``cann`` (the
CANN toolkit and its version), ``torch-npu:<prefix>`` (torch_npu's CANN libraries are there to find) and
``ip`` (iproute2, which msrun uses to find its own address).

The CANN checks appear only in images that have the toolkit or torch_npu, the ``ip`` check only where an env
has MindSpore. Reads files only; executes nothing.
"""

from __future__ import annotations

import glob
import os
from typing import Optional

from launcher.core.conda import Env
from launcher.core.paths import search_path, split_path
from launcher.image.check import FAIL, PASS, WARN, Check, Details
from launcher.image.checks_runtime import DEFAULT_PATH
from launcher.image.context import Context
from launcher.ld.elf import read_elf
from launcher.ld.sonames import CANN_SONAMES
from launcher.modelarts import facts
from launcher.modelarts.cann import SetEnv, find_set_env

#: The file that states the toolkit's version (relative to the toolkit directory; ``*`` is the
#: architecture), and the key that holds it.
VERSION_FILES = (("latest/*-linux/ascend_toolkit_install.info", "version"),)
#: Where the toolkit keeps its libraries (relative to the toolkit directory).
LIBRARY_DIRS = ("latest/lib64", "latest/*-linux/lib64")
#: Where ``ip`` is in images whose PATH does not name it.
SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


def package_dir(ctx: Context, env: Env, package: str) -> Optional[str]:
    """The image path of ``package`` in the env's site-packages, if it is installed there."""
    pattern = glob.escape(ctx.host(env.prefix)) + f"/lib/python3*/site-packages/{package}/__init__.py"
    found = sorted(glob.glob(pattern))
    return ctx.image(os.path.dirname(found[0])) if found else None


def toolkit(ctx: Context) -> Optional[SetEnv]:
    """The CANN toolkit's set_env.sh in the image, as the launcher would find it."""
    return next((s for s in find_set_env(ctx.environ, ctx.host) if s.what == "CANN toolkit"), None)


def toolkit_version(ctx: Context, directory: str) -> Optional[tuple[str, str]]:
    """The toolkit's version and the file that states it (image path), from :data:`VERSION_FILES`."""
    for pattern, key in VERSION_FILES:
        for path in sorted(glob.glob(glob.escape(ctx.host(directory)) + "/" + pattern)):
            try:
                text = ctx.read_text(ctx.image(path))
            except OSError:
                continue
            for line in text.splitlines():
                name, sep, value = line.partition("=")
                if sep and name.strip() == key and value.strip():
                    return value.strip().strip("[]"), ctx.image(path)
    return None


def check_ascend_driver(ctx: Context) -> Check:
    """No Ascend NPU driver in the image (on the live image, one mounted from the node is right)."""
    where = facts.ASCEND_DRIVER_DIR
    host = ctx.host(where)
    try:
        entries = os.listdir(host)
    except OSError:
        entries = []
    details: Details = {"path": where, "entries": len(entries)}
    if not entries:
        return Check("ascend-driver", PASS, "no Ascend driver baked into the image", "", details)
    if ctx.live and os.stat(host).st_dev != os.stat("/").st_dev:
        return Check(
            "ascend-driver", PASS, f"the Ascend driver at {where} is mounted, not baked in", "", details
        )
    return Check(
        "ascend-driver",
        FAIL,
        f"an Ascend driver is baked into the image at {where} ({len(entries)} entries)",
        f"remove it: the platform mounts the node's driver at {where} at run time",
        details,
    )


def check_cann(ctx: Context, found: SetEnv) -> Check:
    """The toolkit's set_env.sh and the file that states its version."""
    directory = os.path.dirname(found.path)
    version = toolkit_version(ctx, directory)
    details: Details = {"set_env": found.path, "version": version[0] if version else None}
    if version is None:
        return Check(
            "cann",
            WARN,
            f"CANN toolkit at {directory}, but no file states its version",
            "check that the toolkit's install finished (latest/*-linux/ascend_toolkit_install.info)",
            details,
        )
    details["version_file"] = version[1]
    summary = f"CANN toolkit {version[0]} at {directory} ({version[1]}); ma-launch sources {found.path}"
    return Check("cann", PASS, summary, "", details)


def _cann_needs(ctx: Context, package: str) -> list[str]:
    """The CANN sonames (:data:`~launcher.modelarts.CANN_SONAMES`) the package's libraries need."""
    needed: set[str] = set()
    for path in glob.glob(glob.escape(ctx.host(package)) + "/**/*.so*", recursive=True):
        info = read_elf(path)
        if info is not None:
            needed.update(n for n in info.needed if n in CANN_SONAMES)
    return sorted(needed)


def cann_library_dirs(ctx: Context) -> list[str]:
    """The image's CANN toolkit library directories (image paths; empty without a toolkit)."""
    found = toolkit(ctx)
    if found is None:
        return []
    base = glob.escape(ctx.host(os.path.dirname(found.path)))
    return [ctx.image(d) for pattern in LIBRARY_DIRS for d in sorted(glob.glob(f"{base}/{pattern}"))]


def _provided(ctx: Context, sonames: list[str]) -> list[str]:
    dirs = cann_library_dirs(ctx)
    return [s for s in sonames if any(os.path.exists(ctx.host(os.path.join(d, s))) for d in dirs)]


def check_torch_npu(ctx: Context, env: Env, package: str, found: Optional[SetEnv]) -> Check:
    """torch_npu's CANN libraries (libhccl.so, libascendcl.so) are in the image's CANN toolkit."""
    cid = f"torch-npu:{env.prefix}"
    needs = _cann_needs(ctx, package) or list(CANN_SONAMES)
    details: Details = {"package": package, "needs": list(needs), "set_env": found.path if found else None}
    if found is None:
        return Check(
            cid,
            FAIL,
            f"env {env.name}: torch_npu needs {', '.join(needs)} from the CANN toolkit, and the image has "
            "none: even `import torch` fails (torch loads torch_npu when it is imported)",
            f"install the CANN toolkit torch_npu was built for under {facts.CANN_TOOLKIT_DIR}",
            details,
        )
    directory = os.path.dirname(found.path)
    missing = [s for s in needs if s not in _provided(ctx, needs)]
    details["missing"] = list(missing)
    if missing:
        return Check(
            cid,
            FAIL,
            f"env {env.name}: torch_npu needs {', '.join(missing)}, which the CANN toolkit at {directory} "
            "does not have",
            "install the full CANN toolkit (with HCCL and ACL) that torch_npu was built for",
            details,
        )
    summary = f"env {env.name}: torch_npu's {', '.join(needs)} come from the CANN toolkit at {directory}"
    return Check(cid, PASS, summary, "", details)


def check_ip(ctx: Context, envs: list[Env]) -> Check:
    """``ip`` is installed: msrun finds its own address with ``ip -j addr``."""
    path = ctx.environ.get("PATH") or DEFAULT_PATH
    entries = [e for e in split_path(path) if e.startswith("/")] + list(SBIN_DIRS)
    found = search_path("ip", ":".join(entries), accept=lambda c: os.path.isfile(ctx.host(c)))
    details: Details = {"ip": found, "envs": [e.prefix for e in envs]}
    if found is not None:
        return Check("ip", PASS, f"{found} is installed (msrun finds its own address with it)", "", details)
    return Check(
        "ip",
        WARN,
        f"MindSpore is installed (env {envs[0].name}) but `ip` is not: msrun finds its own address with "
        "`ip -j addr`, and without it guesses from the route to the master",
        "install iproute2 in the image (apt-get install iproute2, or yum install iproute)",
        details,
    )


def ascend_checks(ctx: Context, envs: list[Env]) -> list[Check]:
    """The Ascend checks that apply to this image, in a stable order."""
    checks = [check_ascend_driver(ctx)]
    found = toolkit(ctx)
    if found is not None:
        checks.append(check_cann(ctx, found))
    for env in envs:
        package = package_dir(ctx, env, "torch_npu")
        if package is not None:
            checks.append(check_torch_npu(ctx, env, package, found))
    with_mindspore = [env for env in envs if package_dir(ctx, env, "mindspore") is not None]
    if with_mindspore:
        checks.append(check_ip(ctx, with_mindspore))
    return checks
