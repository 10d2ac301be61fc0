"""The LD analysis' store on disk (:class:`launcher.ld.store.LdStore`): the user's cache, and the
analysis an image build pre-computed into the env.

* The user's cache: ``$XDG_CACHE_HOME/ma-launch`` or ``$HOME/.cache/ma-launch`` (:func:`default_cache_dir`),
  one file per env and document (``ld-<env>.<document>``), written with the one atomic write
  (:func:`launcher.run.files.write_atomic`), mode 0600 in a 0700 directory. A relative or empty
  ``XDG_CACHE_HOME``/``HOME``, or none at all, means no cache: never a write into the working directory
  or ``/``. A file not owned by the current user is ignored.
* The pre-computed analysis: ``ENV/etc/ma-launch/ld/{index,walk,objects}``, written by
  ``ma-launch --ld-report --save`` (:func:`save_precomputed`) while the image is built. A launch only
  reads it: its answers when the user's cache has none that holds, its walk and objects when the cache
  has none; all checked like the user's own (with signatures that survive the unpacking of image
  layers). A file there is trusted when root, the current user or the env's owner (who can change the
  env's programs anyway) owns it.

Each file is ``ma-launch-ld <crc32> <length>`` on one line, then the document in :mod:`marshal` form. Not
JSON: importing :mod:`json` (with :mod:`re`) costs more than a whole repeated check, which must stay within
a few milliseconds; :mod:`marshal` is built in. Only files that pass the ownership and checksum tests are
decoded. Any trouble reading or writing means "no document": a fresh analysis, never a failed launch.
"""

from __future__ import annotations

import os
from stat import S_ISREG

from launcher.ld.store import LdStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Container, Iterator, Mapping
    from typing import Optional

    from launcher.ld.store import DocName

MAGIC = b"ma-launch-ld "
#: Where an env's pre-computed analysis lives, relative to the env (the top-level ``etc/`` is never walked).
PRECOMPUTED = ("etc", "ma-launch", "ld")


def default_cache_dir(environ: Mapping[str, str]) -> Optional[str]:
    """``$XDG_CACHE_HOME/ma-launch``, else ``$HOME/.cache/ma-launch``; ``None`` (no cache) when neither is
    an absolute path other than ``/``."""
    xdg, home = environ.get("XDG_CACHE_HOME", ""), environ.get("HOME", "")
    if xdg.startswith("/") and xdg.strip("/"):
        return os.path.join(os.path.normpath(xdg), "ma-launch")
    if home.startswith("/") and home.strip("/"):
        return os.path.join(os.path.normpath(home), ".cache", "ma-launch")
    return None


def precomputed_dir(prefix: str) -> str:
    """The directory of the env's pre-computed analysis."""
    return os.path.join(prefix, *PRECOMPUTED)


def encode(doc: Mapping[str, object]) -> bytes:
    """The file contents for ``doc``."""
    import marshal
    import zlib

    body = marshal.dumps(dict(doc))
    return MAGIC + b"%08x %d\n" % (zlib.crc32(body), len(body)) + body


def decode(raw: bytes) -> object:
    """The document in ``raw``, or ``None`` when it is truncated, altered or not one."""
    import marshal
    import zlib

    head, _nl, body = raw.partition(b"\n")
    if not head.startswith(MAGIC):
        return None
    try:
        crc, length = (int(part, 16 if i == 0 else 10) for i, part in enumerate(head[len(MAGIC) :].split()))
        if length != len(body) or crc != zlib.crc32(body):
            return None
        # Only files of a trusted owner with an intact checksum get here (see read_trusted).
        return marshal.loads(body)  # noqa: S302
    except (ValueError, EOFError, TypeError):
        return None


def read_trusted(path: str, owners: Container[int]) -> object:
    """The document in ``path`` when the file is a regular file owned by one of ``owners``, else
    ``None``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid not in owners or not S_ISREG(st.st_mode):
            return None
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return decode(b"".join(chunks))


def _stem(prefix: str) -> str:
    """A readable, file-name-safe name for the env's cache files."""
    import zlib

    safe = "".join(c if c.isalnum() or c in "-." else "_" for c in prefix.strip("/"))[-80:]
    return f"{safe}-{zlib.crc32(prefix.encode('utf-8', 'surrogateescape')):08x}"


class DiskStore(LdStore):
    """The user's cache in ``cache_dir`` (``None``: no cache), and for reading ``walk`` and ``objects``
    when the cache has none, the env's pre-computed analysis (unless ``precomputed`` is false)."""

    def __init__(self, cache_dir: Optional[str], *, precomputed: bool = True) -> None:
        self.cache_dir = cache_dir
        self.precomputed = precomputed

    def path(self, prefix: str, name: DocName) -> Optional[str]:
        """The cache file of the env's document ``name``."""
        if self.cache_dir is None:
            return None
        return os.path.join(self.cache_dir, f"ld-{_stem(prefix)}.{name}")

    def read(self, prefix: str, name: DocName) -> object:
        return next((doc for doc in self.layers(prefix, name) if doc is not None), None)

    def layers(self, prefix: str, name: DocName) -> Iterator[object]:
        path = self.path(prefix, name)
        if path is not None:
            yield read_trusted(path, (os.geteuid(),))
        if self.precomputed:
            yield read_trusted(os.path.join(precomputed_dir(prefix), name), _image_owners(prefix))

    def write(self, prefix: str, name: DocName, doc: Mapping[str, object]) -> bool:
        path = self.path(prefix, name)
        if path is None or self.cache_dir is None:
            return False
        from launcher.run.files import write_atomic  # not needed when the stored answer holds

        try:
            os.makedirs(self.cache_dir, mode=0o700, exist_ok=True)
            write_atomic(path, encode(doc), mode=0o600, durable=False)
        except (OSError, ValueError, TypeError):
            return False
        return True


def _image_owners(prefix: str) -> tuple[int, ...]:
    """Who may have written an env's pre-computed analysis: root, the current user, the env's owner."""
    try:
        return (0, os.geteuid(), os.stat(prefix).st_uid)
    except (OSError, ValueError):
        return (0, os.geteuid())


def user_store(environ: Mapping[str, str]) -> DiskStore:
    """The store a launch uses: the user's cache (if there is a place for one) and pre-computed analyses."""
    return DiskStore(default_cache_dir(environ))


def save_precomputed(prefix: str, docs: Mapping[DocName, Mapping[str, object]]) -> str:
    """Write an env's pre-computed analysis (made by :func:`launcher.ld.precompute.precompute`, after
    :func:`precomputed_dir` was created: creating it must not change what the analysis saw); returns its
    directory. Raises ``OSError`` when the env cannot be written."""
    from launcher.run.files import write_atomic

    directory = precomputed_dir(prefix)
    for name, doc in docs.items():
        write_atomic(os.path.join(directory, name), encode(doc), mode=0o644)
    return directory
