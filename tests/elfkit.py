"""Helpers for the ELF and LD_LIBRARY_PATH tests: real objects compiled by gcc, and hand-made ELF bytes.

Every object built here is small C code: a library exports ``int <name>(void)`` functions and calls the
functions it is given, so that its ``DT_NEEDED`` entries and version needs are real. Dependencies are
linked by path with ``--no-as-needed``, so ``DT_NEEDED`` holds the dependency's soname exactly as in a
real build.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from typing import Optional

from needs import missing, need

require_tool = need


def _source(
    exports: Sequence[str], calls: Sequence[str], main: bool = False, pyext: Optional[str] = None
) -> str:
    lines = []
    if pyext:
        lines.append("#define PY_SSIZE_T_CLEAN\n#include <Python.h>")
    lines += [f"extern int {c}(void);" for c in calls]
    lines += [f"int {e}(void) {{ return {len(e)}; }}" for e in exports]
    total = " + ".join(f"{c}()" for c in calls) or "0"
    if main:
        lines.append(f"int main(void) {{ return ({total}) < 0; }}")
    elif pyext:
        lines.append(
            f'static struct PyModuleDef def = {{PyModuleDef_HEAD_INIT, "{pyext}", NULL, -1, NULL}};\n'
            f"PyMODINIT_FUNC PyInit_{pyext}(void) {{ if (({total}) < 0) return NULL; "
            "return PyModule_Create(&def); }"
        )
    elif calls:
        lines.append(f"int __elfkit_use(void) {{ return {total}; }}")
    return "\n".join(lines) + "\n"


def _link_flags(
    needs: Sequence[str], rpath: Optional[str], runpath: Optional[str], soname: Optional[str]
) -> list[str]:
    flags = []
    if soname:
        flags.append(f"-Wl,-soname,{soname}")
    if rpath is not None:
        flags += ["-Wl,--disable-new-dtags", f"-Wl,-rpath,{rpath}"]
    if runpath is not None:
        flags += ["-Wl,--enable-new-dtags", f"-Wl,-rpath,{runpath}"]
    flags.append("-Wl,--no-as-needed")
    flags += list(needs)
    return flags


def _gcc(args: list[str], source: str, workdir: str) -> None:
    gcc = require_tool("gcc")
    os.makedirs(workdir, exist_ok=True)
    src = os.path.join(workdir, f"src-{abs(hash((source, tuple(args))))}.c")
    with open(src, "w", encoding="utf-8") as f:
        f.write(source)
    proc = subprocess.run([gcc, src, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"gcc failed: {' '.join(args)}\n{proc.stderr}")


def build_lib(
    path: str,
    soname: Optional[str],
    *,
    exports: Sequence[str] = (),
    calls: Sequence[str] = (),
    needs: Sequence[str] = (),
    rpath: Optional[str] = None,
    runpath: Optional[str] = None,
    version_script: Optional[str] = None,
) -> str:
    """A shared library at ``path``; ``needs`` are paths of libraries to link (their sonames become
    DT_NEEDED); ``version_script`` is the text of a linker version script."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    work = os.path.join(os.path.dirname(path), ".elfkit")
    args = ["-shared", "-fPIC", "-o", path, *_link_flags(needs, rpath, runpath, soname)]
    if version_script is not None:
        os.makedirs(work, exist_ok=True)
        vs = os.path.join(work, f"{os.path.basename(path)}.map")
        with open(vs, "w", encoding="utf-8") as f:
            f.write(version_script)
        args.append(f"-Wl,--version-script={vs}")
    _gcc(args, _source(exports or [f"f_{abs(hash(path)) % 100000}"], calls), work)
    shutil.rmtree(work, ignore_errors=True)
    return path


def build_exe(
    path: str,
    *,
    calls: Sequence[str] = (),
    needs: Sequence[str] = (),
    rpath: Optional[str] = None,
    runpath: Optional[str] = None,
) -> str:
    """An executable whose ``main`` calls ``calls`` (found in ``needs``)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    work = os.path.join(os.path.dirname(path), ".elfkit")
    _gcc(["-o", path, *_link_flags(needs, rpath, runpath, None)], _source((), calls, main=True), work)
    shutil.rmtree(work, ignore_errors=True)
    return path


def ext_suffix() -> str:
    return str(sysconfig.get_config_var("EXT_SUFFIX") or ".so")


def build_pyext(
    directory: str,
    module: str,
    *,
    calls: Sequence[str] = (),
    needs: Sequence[str] = (),
    rpath: Optional[str] = None,
    runpath: Optional[str] = None,
) -> str:
    """A real CPython extension module ``module`` for the running Python, in ``directory``."""
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        missing(f"Python headers missing ({include})")
    path = os.path.join(directory, module + ext_suffix())
    os.makedirs(directory, exist_ok=True)
    work = os.path.join(directory, ".elfkit")
    args = ["-shared", "-fPIC", f"-I{include}", "-o", path, *_link_flags(needs, rpath, runpath, None)]
    _gcc(args, _source((), calls, pyext=module), work)
    shutil.rmtree(work, ignore_errors=True)
    return path


def run(
    argv: Sequence[str], ld_dirs: Optional[Sequence[str]], **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with LD_LIBRARY_PATH = ``ld_dirs`` joined (unset when ``None``)."""
    environ = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    environ.update(env)
    if ld_dirs is not None:
        environ["LD_LIBRARY_PATH"] = ":".join(ld_dirs)
    return subprocess.run(list(argv), capture_output=True, text=True, env=environ, timeout=60)


def python() -> str:
    return sys.executable


# ------------------------------------------------------------------------------------------------------
# Hand-made ELF objects (both classes, both byte orders)


class _Strings:
    """A string table under construction; :meth:`add` returns a string's offset."""

    def __init__(self) -> None:
        self.data = bytearray(b"\0")

    def add(self, text: str) -> int:
        off = len(self.data)
        self.data.extend(text.encode() + b"\0")
        return off


def _version_sections(
    e: str,
    strings: _Strings,
    soname: Optional[str],
    verneed: Sequence[tuple[str, Sequence[str]]],
    verdef: Optional[Sequence[str]],
) -> tuple[bytes, Optional[int], Optional[int]]:
    """DT_VERNEED and DT_VERDEF contents, and their offsets within them (None when absent)."""
    ver = bytearray()
    vn_rel = vd_rel = None
    if verneed:
        vn_rel = len(ver)
        for i, (file, names) in enumerate(verneed):
            start = len(ver)
            nxt = 16 + 16 * len(names) if i + 1 < len(verneed) else 0
            ver += struct.pack(e + "HHIII", 1, len(names), strings.add(file), 16, nxt)
            for j, name in enumerate(names):
                ver += struct.pack(
                    e + "IHHII", 0, 0, 2 + j, strings.add(name), 16 if j + 1 < len(names) else 0
                )
            assert len(ver) - start == 16 + 16 * len(names)
    if verdef is not None:
        vd_rel = len(ver)
        entries = [(soname or "base", 1), *((n, 0) for n in verdef)]
        for i, (name, flags) in enumerate(entries):
            nxt = 28 if i + 1 < len(entries) else 0
            ver += struct.pack(e + "HHHHIII", 1, flags, i + 1, 1, 0, 20, nxt)
            ver += struct.pack(e + "II", strings.add(name), 0)
    return bytes(ver), vn_rel, vd_rel


def _headers(
    e: str, is64: bool, elf_class: int, big_endian: bool, elf_type: int, machine: int, parts: dict[str, int]
) -> bytes:
    """The ELF header and the three program headers (PT_LOAD of the whole file, PT_INTERP or a
    placeholder, PT_DYNAMIC) for the layout in ``parts``."""
    ehsize, phsize, base, nph = (64, 56, 0x1000, 3) if is64 else (52, 32, 0x1000, 3)
    ident = b"\x7fELF" + bytes([elf_class, 2 if big_endian else 1, 1, 0]) + b"\0" * 8
    fmt = "HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH"
    ehdr = ident + struct.pack(
        e + fmt, elf_type, machine, 1, 0, ehsize, 0, 0, ehsize, phsize, nph, 64 if is64 else 40, 0, 0
    )

    def ph(p_type: int, off: int, size: int) -> bytes:
        if is64:
            return struct.pack(e + "IIQQQQQQ", p_type, 4, off, base + off, base + off, size, size, 8)
        return struct.pack(e + "IIIIIIII", p_type, off, base + off, base + off, size, size, 4, 4)

    total = parts["total"]
    # PT_INTERP, or a PT_PHDR placeholder
    interp_ph = ph(3, parts["interp"], parts["interp_size"]) if parts["interp"] >= 0 else ph(6, 0, 0)
    load = (
        struct.pack(e + "IIQQQQQQ", 1, 5, 0, base, base, total, total, 0x1000)
        if is64
        else struct.pack(e + "IIIIIIII", 1, 0, base, base, total, total, 5, 0x1000)
    )
    return ehdr + load + interp_ph + ph(2, parts["dyn"], parts["dyn_size"])


def make_elf(
    *,
    elf_class: int = 2,
    big_endian: bool = False,
    machine: int = 62,
    elf_type: int = 3,
    needed: Sequence[str] = (),
    soname: Optional[str] = None,
    rpath: Optional[str] = None,
    runpath: Optional[str] = None,
    interp: Optional[str] = None,
    verneed: Sequence[tuple[str, Sequence[str]]] = (),
    verdef: Optional[Sequence[str]] = None,
) -> bytes:
    """A minimal, well-formed ELF object: one PT_LOAD mapping the whole file at address 0x1000,
    PT_INTERP, PT_DYNAMIC, a string table and optional version sections."""
    e = ">" if big_endian else "<"
    is64 = elf_class == 2
    base = 0x1000
    strings = _Strings()
    dyn: list[tuple[int, int]] = [(1, strings.add(n)) for n in needed]
    for tag, value in ((14, soname), (15, rpath), (29, runpath)):
        if value is not None:
            dyn.append((tag, strings.add(value)))
    interp_in_str = strings.add(interp) if interp is not None else None
    ver, vn_rel, vd_rel = _version_sections(e, strings, soname, verneed, verdef)

    str_off = (64 + 56 * 3) if is64 else (52 + 32 * 3)
    ver_off = str_off + len(strings.data)
    ver_off += (-ver_off) % 8
    dyn += [(5, base + str_off), (10, len(strings.data))]
    if vn_rel is not None:
        dyn += [(0x6FFFFFFE, base + ver_off + vn_rel), (0x6FFFFFFF, len(verneed))]
    if vd_rel is not None:
        assert verdef is not None
        dyn += [(0x6FFFFFFC, base + ver_off + vd_rel), (0x6FFFFFFD, len(verdef) + 1)]
    dyn.append((0, 0))
    dyn_off = ver_off + len(ver)
    dyn_off += (-dyn_off) % 8
    dyn_bytes = b"".join(struct.pack(e + ("qQ" if is64 else "iI"), t, v) for t, v in dyn)
    parts = {
        "total": dyn_off + len(dyn_bytes),
        "interp": -1 if interp_in_str is None else str_off + interp_in_str,
        "interp_size": len(interp or "") + 1,
        "dyn": dyn_off,
        "dyn_size": len(dyn_bytes),
    }
    out = bytearray(_headers(e, is64, elf_class, big_endian, elf_type, machine, parts))
    assert len(out) == str_off
    out += strings.data
    out += b"\0" * (ver_off - len(out))
    out += ver
    out += b"\0" * (dyn_off - len(out))
    out += dyn_bytes
    return bytes(out)
