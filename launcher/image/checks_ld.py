"""doctor's ``ld:<prefix>`` check: every shared library the env's programs and libraries need is found.

The loader analysis is the launcher's own (:mod:`launcher.ld.analysis`); in an unpacked root, a soname the
analysis cannot place counts as found when the image's own system library directories hold it.
"""

from __future__ import annotations

import os

from launcher.core.conda import Env
from launcher.image.check import FAIL, PASS, WARN, Check, Details, JSONValue
from launcher.image.context import Context
from launcher.ld.analysis import analyze
from launcher.ld.result import AddedDir, LdAnalysis
from launcher.ld.sonames import is_driver_soname
from launcher.ld.store import NullStore
from launcher.modelarts import facts

SYSTEM_LIB_DIRS = (
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
)


def ld_conf_dirs(ctx: Context) -> list[str]:
    """The directories the image's ``/etc/ld.so.conf.d/*.conf`` files list (image paths)."""
    conf_d = "/etc/ld.so.conf.d"
    try:
        names = sorted(os.listdir(ctx.host(conf_d)))
    except OSError:
        return []
    dirs: list[str] = []
    for name in names:
        if not name.endswith(".conf"):
            continue
        try:
            text = ctx.read_text(os.path.join(conf_d, name))
        except OSError:
            continue
        dirs.extend(
            s for s in (line.strip() for line in text.splitlines()) if s.startswith("/") and "\0" not in s
        )
    return dirs


def _ld_environ(ctx: Context) -> dict[str, str]:
    """The image's variables with LD_LIBRARY_PATH pointing at the image's directories on this machine."""
    environ = dict(ctx.environ)
    if not ctx.live and environ.get("LD_LIBRARY_PATH"):
        environ["LD_LIBRARY_PATH"] = ":".join(
            ctx.host(p) if p.startswith("/") else p for p in environ["LD_LIBRARY_PATH"].split(":") if p
        )
    return environ


def run_analysis(ctx: Context, host_prefix: str) -> LdAnalysis:
    """The launcher's loader analysis of the env at ``host_prefix`` and every executable in it: the one
    call into the analysis. It keeps nothing (a store that stores nothing), so doctor leaves nothing
    behind."""
    return analyze(host_prefix, None, _ld_environ(ctx), store=NullStore(), reach=True)


def _missing(ctx: Context, analysis: LdAnalysis) -> dict[str, list[str]]:
    """``soname -> needers (image paths)`` that neither the analysis nor the image's system dirs provide."""
    image_dirs = [] if ctx.live else [*SYSTEM_LIB_DIRS, *ld_conf_dirs(ctx)]
    missing: dict[str, list[str]] = {}
    for item in analysis.unresolved:
        if any(os.path.isfile(ctx.host(os.path.join(d, item.soname))) for d in image_dirs):
            continue  # the image's own system libraries provide it
        missing[item.soname] = sorted(ctx.image(n) if n.startswith("/") else n for n in item.needers)
    return dict(sorted(missing.items()))


def _added(ctx: Context, added: AddedDir) -> JSONValue:
    """An env directory the launcher would prepend, with ``[soname, needer]`` pairs (image paths)."""
    provides: list[JSONValue] = [[soname, ctx.image(needer)] for soname, needer in added.provides]
    return {"directory": ctx.image(added.directory), "provides": provides}


def check_ld(ctx: Context, env: Env) -> Check:
    """Sonames the env's programs and libraries need that nothing provides (GPU driver sonames only warn:
    the platform mounts the driver at run time)."""
    cid = f"ld:{env.prefix}"
    analysis = run_analysis(ctx, ctx.host(env.prefix))
    missing = _missing(ctx, analysis)
    details: Details = {
        "env": env.name,
        "prefix": env.prefix,
        "added": [_added(ctx, a) for a in analysis.added],
        "unresolved": {k: list(v) for k, v in missing.items()},
    }
    if not ctx.live:
        details["note"] = "libraries outside the env were looked up on this machine, not in the image"
    drivers = [s for s in missing if is_driver_soname(s)]
    others = [s for s in missing if not is_driver_soname(s)]
    if others:
        needers = missing[others[0]]
        return Check(
            cid,
            FAIL,
            f"env {env.name}: nothing provides {', '.join(others)}"
            + (f" (needed by {needers[0]})" if needers else ""),
            "install the package that ships it into the env (conda install …) or add its directory with "
            "LD_LIBRARY_PATH",
            details,
        )
    if drivers:
        return Check(
            cid,
            WARN,
            f"env {env.name}: {', '.join(drivers)} not in the image",
            f"expected: the platform mounts the GPU driver at {facts.DRIVER_DIR} at run time",
            details,
        )
    return Check(cid, PASS, f"env {env.name}: every needed shared library is found", "", details)
