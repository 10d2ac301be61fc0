"""What the dynamic loader needs to know about one ELF object (:class:`ElfInfo`), as read by
:mod:`launcher.ld.elf`, with a compact JSON-shaped form for the analysis cache."""

from __future__ import annotations

from launcher.core.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

DF_1_NODEFLIB = 0x800


class ElfInfo(Record):
    """What the dynamic loader needs to know about one ELF object.

    ``version_defs`` is ``None`` when the object has no ``DT_VERDEF`` at all (the loader then accepts any
    version a needer asks for); the base entry (the object's own name) is left out. ``version_needs``
    holds only the non-weak needs: a missing weak version does not stop the loader.
    """

    __slots__ = (
        "big_endian",
        "elf_class",
        "elf_type",
        "flags_1",
        "interp",
        "machine",
        "needed",
        "rpath",
        "runpath",
        "soname",
        "version_defs",
        "version_needs",
    )

    def __init__(
        self,
        elf_class: int,
        big_endian: bool,
        machine: int,
        elf_type: int,
        interp: Optional[str] = None,
        soname: Optional[str] = None,
        needed: tuple[str, ...] = (),
        rpath: Optional[str] = None,
        runpath: Optional[str] = None,
        flags_1: int = 0,
        version_needs: tuple[tuple[str, tuple[str, ...]], ...] = (),
        version_defs: Optional[tuple[str, ...]] = None,
    ) -> None:
        self.elf_class = elf_class
        self.big_endian = big_endian
        self.machine = machine
        self.elf_type = elf_type
        self.interp = interp
        self.soname = soname
        self.needed = needed
        self.rpath = rpath
        self.runpath = runpath
        self.flags_1 = flags_1
        self.version_needs = version_needs
        self.version_defs = version_defs

    @property
    def arch_key(self) -> tuple[int, bool, int]:
        """(class, byte order, machine): a provider must have the same key as its needer."""
        return (self.elf_class, self.big_endian, self.machine)

    @property
    def nodeflib(self) -> bool:
        """``DF_1_NODEFLIB``: the loader skips ld.so.cache and the default directories for its needs."""
        return bool(self.flags_1 & DF_1_NODEFLIB)

    def versions_needed_from(self, soname: str) -> tuple[str, ...]:
        """The version names this object requires from the library ``soname``."""
        for file, names in self.version_needs:
            if file == soname:
                return names
        return ()

    def defines_versions(self, names: tuple[str, ...]) -> bool:
        """Would the loader accept this object for a needer requiring ``names``?"""
        if not names or self.version_defs is None:
            return True
        return all(name in self.version_defs for name in names)

    def to_list(self) -> list[object]:
        """A compact JSON-shaped form (for the analysis cache); :meth:`from_list` reverses it."""
        return [
            self.elf_class,
            self.big_endian,
            self.machine,
            self.elf_type,
            self.interp,
            self.soname,
            list(self.needed),
            self.rpath,
            self.runpath,
            self.flags_1,
            [[f, list(v)] for f, v in self.version_needs],
            None if self.version_defs is None else list(self.version_defs),
        ]

    @classmethod
    def from_list(cls, data: object) -> ElfInfo:
        """Rebuild from :meth:`to_list`; raises ``ValueError`` on malformed data."""
        if not isinstance(data, list) or len(data) != 12:
            raise ValueError("bad ElfInfo record")
        c, be, m, t, interp, soname, needed, rpath, runpath, f1, vneed, vdef = data
        if not all(type(x) is int for x in (c, m, t, f1)) or not isinstance(be, bool):
            raise ValueError("bad ElfInfo record")
        if not isinstance(vneed, list) or not all(isinstance(p, list) and len(p) == 2 for p in vneed):
            raise ValueError("bad ElfInfo record")
        needs = tuple((_text(f), _texts(v)) for f, v in vneed)
        defs = None if vdef is None else _texts(vdef)
        return cls(
            c,
            be,
            m,
            t,
            _opt_text(interp),
            _opt_text(soname),
            _texts(needed),
            _opt_text(rpath),
            _opt_text(runpath),
            f1,
            needs,
            defs,
        )


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    raise ValueError("bad ElfInfo record")


def _opt_text(value: object) -> Optional[str]:
    return None if value is None else _text(value)


def _texts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("bad ElfInfo record")
    return tuple(_text(item) for item in value)
