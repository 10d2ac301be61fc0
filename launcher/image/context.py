"""What doctor's checks look at: the image (the running system, or an unpacked root) and its variables.

An unpacked root is a directory on this machine holding another system's files. Its symlinks are followed
the way the kernel would inside that system (an absolute target starts at the image root, ``..`` stops at
it), so a link such as ``anaconda3 -> /opt/conda`` means the image's ``/opt/conda`` and never this
machine's. Nothing here writes or executes anything.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from launcher.errors import AccessError, NotFoundError, UsageError
from launcher.image.baseline import BUILTIN_SETUID_BASELINE, read_baseline
from launcher.image.reading import TEXT_LIMIT, read_regular

#: The most symlinks one lookup follows (Linux's limit); more means a loop.
MAX_SYMLINKS = 40


@dataclass(frozen=True)
class Context:
    """The image root, the image's variables, the setuid baseline, and whether to show progress.
    ``root == "/"`` means the live image: paths are this machine's own."""

    root: str
    environ: Mapping[str, str]
    baseline: frozenset[str] = BUILTIN_SETUID_BASELINE
    progress: bool = False

    @property
    def live(self) -> bool:
        return self.root == "/"

    def _raw(self, image_path: str) -> str:
        return os.path.join(self.root, image_path.lstrip("/"))

    def resolve(self, image_path: str) -> str:
        """``image_path`` with every symlink followed inside the image: an image path.

        Raises ``OSError`` (``ELOOP``) when the lookup meets more than :data:`MAX_SYMLINKS` links."""
        if self.live:
            return os.path.realpath(image_path)
        parts = [p for p in image_path.split("/") if p]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            try:
                target = os.readlink(self._raw("/".join([*done, part])))
            except OSError:  # not a link, or not there: the rest cannot be a link either way
                done.append(part)
                continue
            hops += 1
            if hops > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), image_path)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
        return "/" + "/".join(done)

    def host(self, image_path: str) -> str:
        """Where an image path is on this machine, symlinks resolved inside the image; never raises.

        A path caught in a symlink loop maps below ``/dev/null``, where every lookup fails (``ENOTDIR``),
        so to the caller it does not exist, as to the kernel. :meth:`resolve` tells the loop apart."""
        if self.live:
            return image_path
        try:
            return self._raw(self.resolve(image_path))
        except OSError:
            return os.path.join(os.devnull, image_path.lstrip("/"))

    def image(self, host_path: str) -> str:
        """The path inside the image of a path on this machine below the root."""
        if self.live:
            return host_path
        rel = os.path.relpath(host_path, self.root)
        return "/" if rel == "." else "/" + rel

    def read_bytes(self, image_path: str, limit: Optional[int] = TEXT_LIMIT) -> bytes:
        """The bytes of a regular file in the image (see :func:`~launcher.image.reading.read_regular`).

        Raises ``OSError`` whose ``filename`` is the image path."""
        try:
            return read_regular(self._raw(self.resolve(image_path)), limit)
        except OSError as exc:
            exc.filename = image_path
            raise

    def read_text(self, image_path: str, limit: Optional[int] = TEXT_LIMIT) -> str:
        """A text file in the image, decoded as UTF-8 with bad bytes replaced. Raises ``OSError``."""
        return self.read_bytes(image_path, limit).decode("utf-8", "replace")


def parse_image_env(items: Sequence[str]) -> dict[str, str]:
    """``--image-env KEY=VALUE`` items as a mapping (the last one wins). Keys are shell variable names."""
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name_ok = key.isascii() and key.replace("_", "a").isalnum() and not key[:1].isdigit()
        if not sep or not key or not name_ok:
            raise UsageError(
                f"--image-env {item!r} is not KEY=VALUE", hint="e.g. --image-env PYTHONUNBUFFERED=1"
            )
        result[key] = value
    return result


def check_root(root: str) -> str:
    """``root`` as an absolute path without symlinks, after making sure doctor can read it."""
    path = os.path.realpath(os.path.abspath(root))
    hint = "give the directory a 'docker export' was unpacked in"
    if not os.path.exists(path):
        raise NotFoundError(f"image root {path} does not exist", hint=hint)
    if not os.path.isdir(path):
        raise NotFoundError(f"image root {path} is not a directory", hint=hint)
    if not os.access(path, os.R_OK | os.X_OK):
        raise AccessError(
            f"cannot read the image root {path}: permission denied",
            hint="run doctor as a user who can read the whole tree (its owner, or root)",
        )
    return path


def make_context(
    root: str,
    image_env: Sequence[str] = (),
    baseline: Optional[str] = None,
    progress: bool = False,
    environ: Optional[Mapping[str, str]] = None,
) -> Context:
    """The context for ``doctor --root ROOT``: the live image's own variables (``environ``, by default this
    process's) when ROOT is ``/``, plus ``--image-env`` items; the baseline file when given.

    Raises the usage, not-found and access errors of the arguments before anything is checked."""
    variables = parse_image_env(image_env)
    path = check_root(root)
    known = read_baseline(baseline) if baseline else BUILTIN_SETUID_BASELINE
    base: dict[str, str] = {}
    if path == "/":
        base.update(os.environ if environ is None else environ)
    return Context(root=path, environ={**base, **variables}, baseline=known, progress=progress)
