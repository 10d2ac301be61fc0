"""doctor's checks that need the whole tree, from one walk: ``setuid`` (root-owned setuid/setgid files the
base image does not ship), ``gpu-driver`` (driver libraries baked in) and ``size`` (the platform's limits).
"""

from __future__ import annotations

import os
import stat
import sys
import time
from dataclasses import dataclass, field

from launcher.image.check import FAIL, PASS, WARN, Check, Details
from launcher.image.context import Context
from launcher.ld.sonames import is_driver_soname
from launcher.modelarts import facts

#: Trees that hold no image files (the kernel's and the container runtime's).
SKIPPED_TREES = ("/proc", "/sys", "/dev")


@dataclass
class TreeScan:
    """What the walk found: regular-file bytes (hard links once), entries, root-owned setuid/setgid files
    ``(image path, mode)``, baked driver libraries, and entries that could not be read."""

    total_bytes: int = 0
    files: int = 0
    setuid: list[tuple[str, int]] = field(default_factory=list)
    drivers: list[str] = field(default_factory=list)
    errors: int = 0


class _Progress:
    """One updating stderr line while the walk runs (a terminal only), wiped at the end."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last = 0.0
        self.width = 0

    def show(self, scan: TreeScan, where: str) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.2:
            return
        self.last = now
        shown = where.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
        line = f"scanning: {scan.files} files, {scan.total_bytes / facts.GB:.2f} GB  {shown}"[:100]
        sys.stderr.write("\r" + line.ljust(self.width))
        sys.stderr.flush()
        self.width = len(line)

    def done(self) -> None:
        if self.enabled and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


def _note_file(
    ctx: Context, scan: TreeScan, entry: os.DirEntry[str], st: os.stat_result, seen: set[tuple[int, int]]
) -> None:
    scan.files += 1
    if stat.S_ISREG(st.st_mode):
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in seen:
                return
            seen.add(key)
        scan.total_bytes += st.st_size
        if st.st_uid == 0 and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            scan.setuid.append((ctx.image(entry.path), stat.S_IMODE(st.st_mode)))
    if is_driver_soname(entry.name):
        image_path = ctx.image(entry.path)
        if not image_path.startswith(facts.DRIVER_DIR + "/") and "/stubs/" not in image_path:
            scan.drivers.append(image_path)


def scan_tree(ctx: Context) -> TreeScan:
    """Walk the image once, never following symlinks: size, root-owned setuid/setgid files and baked GPU
    driver libraries. Skips /proc, /sys, /dev; on the live image stays on the root file system's device.
    Side effect: the progress line on stderr when ``ctx.progress``."""
    scan = TreeScan()
    progress = _Progress(ctx.progress)
    top = ctx.host("/")
    root_dev = os.lstat(top).st_dev
    seen: set[tuple[int, int]] = set()
    stack = [top]
    skipped = {os.path.join(top, p.lstrip("/")) for p in SKIPPED_TREES}
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError:
            scan.errors += 1
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                scan.errors += 1
                continue
            if stat.S_ISDIR(st.st_mode):
                if entry.path not in skipped and (not ctx.live or st.st_dev == root_dev):
                    stack.append(entry.path)
                continue
            _note_file(ctx, scan, entry, st, seen)
        progress.show(scan, ctx.image(directory))
    progress.done()
    scan.setuid.sort()
    scan.drivers.sort()
    return scan


def check_setuid(ctx: Context, scan: TreeScan) -> Check:
    """No root-owned setuid/setgid file beyond the base image's (the baseline)."""
    unexpected = [(p, m) for p, m in scan.setuid if p not in ctx.baseline]
    details: Details = {
        "unexpected": [{"path": p, "mode": oct(m)} for p, m in unexpected],
        "known": [p for p, _m in scan.setuid if p in ctx.baseline],
    }
    if unexpected:
        paths = [p for p, _m in unexpected]
        shown = ", ".join(paths[:5]) + (f" (+{len(paths) - 5} more)" if len(paths) > 5 else "")
        return Check(
            "setuid",
            FAIL,
            f"{len(paths)} added root-owned setuid/setgid file(s): {shown}",
            f"remove the bits (chmod u-s,g-s {paths[0]}) or list base-image files with --baseline FILE",
            details,
        )
    known = len(scan.setuid)
    return Check("setuid", PASS, f"no added setuid/setgid files ({known} known from the base)", "", details)


def check_drivers(scan: TreeScan) -> Check:
    """No GPU driver library baked in (CUDA forward-compatibility libraries only warn)."""
    details: Details = {"files": list(scan.drivers)}
    if not scan.drivers:
        return Check("gpu-driver", PASS, "no GPU driver libraries baked into the image", "", details)
    compat = [p for p in scan.drivers if "/compat/" in p]
    baked = [p for p in scan.drivers if "/compat/" not in p]
    if not baked:
        return Check(
            "gpu-driver",
            WARN,
            f"CUDA forward-compatibility driver libraries: {', '.join(compat[:3])}",
            "fine only if the node's driver is older; they take effect when on LD_LIBRARY_PATH",
            details,
        )
    return Check(
        "gpu-driver",
        FAIL,
        f"{len(baked)} GPU driver file(s) in the image: {', '.join(baked[:3])}"
        + (" …" if len(baked) > 3 else ""),
        f"remove them: the platform mounts the node's driver at {facts.DRIVER_DIR}",
        details,
    )


def _gb(size: int) -> str:
    return f"{size / facts.GB:g}"


def check_size(scan: TreeScan) -> Check:
    """The image is below the new service's limit (and its recommendation); unreadable entries warn, as
    the size is then a lower bound."""
    size = scan.total_bytes
    details: Details = {"bytes": size, "files": scan.files, "unreadable": scan.errors}
    text = f"{size / facts.GB:.2f} GB in {scan.files} files"
    if size > facts.SIZE_LIMIT:
        return Check(
            "size",
            FAIL,
            f"{text}: above the {_gb(facts.SIZE_LIMIT)} GB limit",
            "shrink the image: conda clean -afy, pip cache purge, multi-stage builds",
            details,
        )
    if size > facts.SIZE_RECOMMENDED:
        return Check(
            "size",
            WARN,
            f"{text}: above the recommended {_gb(facts.SIZE_RECOMMENDED)} GB",
            f"smaller images start faster (the old service allowed only {_gb(facts.SIZE_LIMIT_V1)} GB)",
            details,
        )
    if scan.errors:
        summary = f"{text}, and {scan.errors} entries doctor could not read: the size is a lower bound"
        return Check("size", WARN, summary, "run doctor as root to read the whole tree", details)
    note = f" (above the old service's {_gb(facts.SIZE_LIMIT_V1)} GB)" if size > facts.SIZE_LIMIT_V1 else ""
    return Check("size", PASS, text + note, "", details)
