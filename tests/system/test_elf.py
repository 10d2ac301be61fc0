from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from elfkit import build_exe, build_lib, make_elf
from hypothesis import given, settings
from hypothesis import strategies as st

from launcher.ld.elf import ElfInfo, parse_elf_bytes, read_elf

SYSTEM_LIBSTDCXX = [
    p
    for p in (
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
        "/usr/lib64/libstdc++.so.6",
        "/lib64/libstdc++.so.6",
    )
    if os.path.exists(p)
]


@pytest.mark.parametrize("elf_class", [1, 2])
@pytest.mark.parametrize("big_endian", [False, True])
def test_hand_made_objects_of_both_classes_and_byte_orders(elf_class: int, big_endian: bool) -> None:
    data = make_elf(
        elf_class=elf_class,
        big_endian=big_endian,
        machine=183,
        needed=["liba.so.1", "libb.so"],
        soname="libx.so.1",
        rpath="$ORIGIN/../lib",
        runpath="/opt/r",
        interp="/lib/ld-linux-aarch64.so.1",
        verneed=[("liba.so.1", ["A_1", "A_2"]), ("libc.so.6", ["GLIBC_2.17"])],
        verdef=["X_1", "X_2"],
    )
    info = parse_elf_bytes(data)
    assert info == ElfInfo(
        elf_class=elf_class,
        big_endian=big_endian,
        machine=183,
        elf_type=3,
        interp="/lib/ld-linux-aarch64.so.1",
        soname="libx.so.1",
        needed=("liba.so.1", "libb.so"),
        rpath="$ORIGIN/../lib",
        runpath="/opt/r",
        version_needs=(("liba.so.1", ("A_1", "A_2")), ("libc.so.6", ("GLIBC_2.17",))),
        version_defs=("X_1", "X_2"),
    )
    assert info.versions_needed_from("liba.so.1") == ("A_1", "A_2")
    assert info.defines_versions(("X_2",)) and not info.defines_versions(("X_3",))
    assert ElfInfo.from_list(info.to_list()) == info


def test_a_library_without_version_definitions_accepts_any_version() -> None:
    info = parse_elf_bytes(make_elf(needed=["libc.so.6"]))
    assert info is not None and info.version_defs is None
    assert info.defines_versions(("ANY_1",))


def test_gcc_built_library_and_executable(tmp_path: os.PathLike[str]) -> None:
    d = str(tmp_path)
    dep = build_lib(
        f"{d}/lib/libdep.so.1",
        "libdep.so.1",
        exports=["dep_one", "dep_two"],
        version_script="DEP_1 { global: dep_one; local: *; };\nDEP_2 { global: dep_two; } DEP_1;\n",
    )
    lib = build_lib(
        f"{d}/lib/libuser.so.1", "libuser.so.1", calls=["dep_two"], needs=[dep], runpath="$ORIGIN"
    )
    exe = build_exe(f"{d}/bin/app", calls=["dep_one"], needs=[dep, lib], rpath="$ORIGIN/../lib")

    dinfo = read_elf(dep)
    assert dinfo is not None and dinfo.soname == "libdep.so.1"
    assert dinfo.version_defs == ("DEP_1", "DEP_2")
    assert dinfo.elf_type == 3 and dinfo.elf_class == 2 and not dinfo.big_endian

    uinfo = read_elf(lib)
    assert uinfo is not None and uinfo.runpath == "$ORIGIN" and uinfo.rpath is None
    assert "libdep.so.1" in uinfo.needed
    assert uinfo.versions_needed_from("libdep.so.1") == ("DEP_2",)

    einfo = read_elf(exe)
    assert einfo is not None
    assert einfo.needed[:2] == ("libdep.so.1", "libuser.so.1")
    assert einfo.rpath == "$ORIGIN/../lib" and einfo.runpath is None
    assert einfo.interp and "ld-" in einfo.interp
    assert einfo.arch_key == dinfo.arch_key


@pytest.mark.skipif(not SYSTEM_LIBSTDCXX, reason="no system libstdc++")
def test_version_needs_and_definitions_of_the_system_libstdcxx() -> None:
    info = read_elf(SYSTEM_LIBSTDCXX[0])
    assert info is not None and info.soname == "libstdc++.so.6"
    assert info.version_defs is not None
    assert "GLIBCXX_3.4" in info.version_defs and "CXXABI_1.3" in info.version_defs
    assert "libc.so.6" in dict(info.version_needs)
    assert all(v.startswith("GLIBC_") for v in info.versions_needed_from("libc.so.6"))


def test_not_elf_and_unreadable_give_none(tmp_path: os.PathLike[str]) -> None:
    d = str(tmp_path)
    script = os.path.join(d, "libc.so")
    with open(script, "w") as f:
        f.write("/* GNU ld script */\nGROUP ( /lib/libc.so.6 )\n")
    assert read_elf(script) is None
    assert read_elf(os.path.join(d, "missing.so")) is None
    assert read_elf(d) is None  # a directory
    fifo = os.path.join(d, "libfifo.so.1")
    os.mkfifo(fifo)
    assert read_elf(fifo) is None  # and does not block
    empty = os.path.join(d, "empty.so")
    open(empty, "wb").close()
    assert read_elf(empty) is None


def test_every_truncation_of_a_real_library_is_handled(tmp_path: os.PathLike[str]) -> None:
    lib = build_lib(f"{tmp_path}/libt.so.1", "libt.so.1", needs=[], runpath="$ORIGIN")
    with open(lib, "rb") as f:
        data = f.read()
    full = parse_elf_bytes(data)
    assert full is not None and full.soname == "libt.so.1"
    for n in range(0, len(data), 7):
        info = parse_elf_bytes(data[:n])
        assert info is None or isinstance(info, ElfInfo)
    cut = os.path.join(str(tmp_path), "libcut.so")
    for n in (10, 64, 200, len(data) // 2):
        with open(cut, "wb") as f:
            f.write(data[:n])
        assert read_elf(cut) is None or isinstance(read_elf(cut), ElfInfo)


def test_random_corruption_of_a_real_library_never_raises(tmp_path: os.PathLike[str]) -> None:
    lib = build_lib(f"{tmp_path}/libc1.so.1", "libc1.so.1", runpath="$ORIGIN")
    with open(lib, "rb") as f:
        data = bytearray(f.read())
    rng = random.Random(1234)
    for _ in range(2000):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(0, min(len(mutated), 4096))
            mutated[pos] = rng.randrange(256)
        info = parse_elf_bytes(bytes(mutated))
        assert info is None or isinstance(info, ElfInfo)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes(data: bytes) -> None:
    assert parse_elf_bytes(data) is None or True
    assert parse_elf_bytes(b"\x7fELF" + data) is None or True


_TEMPLATE = make_elf(
    needed=["liba.so.1"],
    soname="libf.so.1",
    rpath="$ORIGIN",
    verneed=[("liba.so.1", ["A_1"])],
    verdef=["F_1"],
)
_TEMPLATE32BE = make_elf(elf_class=1, big_endian=True, needed=["liba.so.1"], verneed=[("liba.so.1", ["A_1"])])


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from([_TEMPLATE, _TEMPLATE32BE]),
    st.lists(st.tuples(st.integers(0, 2047), st.integers(0, 255)), max_size=12),
    st.integers(0, 4096),
)
def test_fuzz_mutated_headers(template: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(template)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    info = parse_elf_bytes(bytes(data[: cut or None]))
    assert info is None or isinstance(info, ElfInfo)


def test_read_shebang(tmp_path: Path) -> None:
    from launcher.core.programs import read_shebang, runs_python

    script = tmp_path / "s"
    for text, words in [
        (b"#!/usr/bin/env python3 -u\nprint()\n", ["/usr/bin/env", "python3", "-u"]),
        (b"#! /bin/sh\n", ["/bin/sh"]),
        (b"#!\n", None),
        (b"echo no\n", None),
        (b"\x7fELF\x02", None),
    ]:
        script.write_bytes(text)
        assert read_shebang(str(script)) == words
    assert read_shebang(str(tmp_path / "missing")) is None
    script.write_bytes(b"#!/opt/env/bin/python3.11\n")
    assert runs_python(str(script), "train-entry")
    script.write_bytes(b"#!/bin/bash\n")
    assert not runs_python(str(script), "run")
