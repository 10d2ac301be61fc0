"""Where the system keeps libraries, as the loader sees it: ``/etc/ld.so.cache``, the built-in default
directories per machine, the entries of ``LD_LIBRARY_PATH``; and whether a path lies inside the env.
Small and free of imports: the fast path of a repeated launch needs it."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from launcher.ld.elfinfo import ElfInfo

LD_SO_CACHE = "/etc/ld.so.cache"
#: ELF machine -> the Debian multiarch directory name.
TRIPLETS = {
    62: "x86_64-linux-gnu",
    183: "aarch64-linux-gnu",
    3: "i386-linux-gnu",
    21: "powerpc64le-linux-gnu",
    22: "s390x-linux-gnu",
    40: "arm-linux-gnueabihf",
    243: "riscv64-linux-gnu",
}
_ELFCLASS64 = 2


def default_dirs(info: ElfInfo) -> tuple[str, ...]:
    """The loader's built-in directories for an object of ``info``'s class and machine (Debian and
    Red Hat layouts both)."""
    triplet = TRIPLETS.get(info.machine)
    dirs: list[str] = []
    if triplet and (info.elf_class == _ELFCLASS64 or info.machine in (3, 40)):
        dirs += [f"/lib/{triplet}", f"/usr/lib/{triplet}"]
    if info.elf_class == _ELFCLASS64:
        dirs += ["/lib64", "/usr/lib64"]
    else:
        dirs += ["/lib32", "/usr/lib32"]
    dirs += ["/lib", "/usr/lib"]
    return tuple(dirs)


def system_lib_dirs() -> list[str]:
    """Every default directory of every known machine that exists here (for cache keys and shadows)."""
    dirs = ["/lib", "/usr/lib", "/lib64", "/usr/lib64"]
    for triplet in TRIPLETS.values():
        dirs += [d for d in (f"/lib/{triplet}", f"/usr/lib/{triplet}") if os.path.isdir(d)]
    return dirs


def ld_path_entries(environ: Mapping[str, str]) -> list[str]:
    """The absolute, distinct entries of ``LD_LIBRARY_PATH`` (the loader ignores relative ones here too:
    they depend on the working directory of each process)."""
    out: list[str] = []
    for item in (environ.get("LD_LIBRARY_PATH") or "").replace(";", ":").split(":"):
        if item.startswith("/"):
            norm = os.path.normpath(item)
            if norm not in out:
                out.append(norm)
    return out


def inside(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or lies below it (both normalised absolute paths)."""
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")
