"""Read a data pickle without running code: plain containers and scalars only.

Some datasets ship their annotations as Python pickles (RefCOCO's ``refs(unc).p``). A
pickle is a program: ``pickle.load`` imports and calls whatever the file names, so a
hostile file runs code. :func:`load_plain_pickle` refuses every import (the only way a
pickle reaches a callable, and so the only way it runs code) except the built-in ``set``
and ``frozenset`` and a checked stand-in for ``_codecs.encode(text, "latin1")`` (how
protocols 0-2 store ``bytes``), and every persistent id; what can come back is built from ``dict``,
``list``, ``tuple``, ``set``, ``frozenset``, ``str``, ``bytes``, ``int``, ``float``,
``bool``, ``complex`` and ``None``. Anything else raises :class:`UnsafePickleError`
naming the file and what it asked for.

Python 2 pickles (the published RefCOCO files) are read with their byte strings decoded as
UTF-8 (undecodable bytes replaced).
"""

from __future__ import annotations

import io
import os
import pickle
from typing import Any, Union

PathLike = Union[str, os.PathLike]



def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What Python 3 pickles of protocol < 3 call to rebuild ``bytes``: ``_codecs.encode(text, "latin1")``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode called with {type(text).__name__}, {encoding!r}; refused")
    return text.encode("latin1")


# the only globals a plain-data pickle may name: protocol 2 stores sets as a call to set(), and
# Python 3's protocols 0-2 store bytes as a call to _codecs.encode (replaced by a checked stand-in)
_ALLOWED_GLOBALS = {("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
                    ("__builtin__", "set"): set, ("__builtin__", "frozenset"): frozenset,
                    ("_codecs", "encode"): _latin1_bytes}
_PLAIN_SCALARS = (str, bytes, int, float, bool, complex, type(None))


class UnsafePickleError(ValueError):
    """A pickle asks for something other than plain containers and scalars (and was not run)."""


class _PlainUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves no global but ``set`` / ``frozenset`` and no persistent id."""

    def __init__(self, file: Any, source: str):
        super().__init__(file, encoding="utf-8", errors="replace")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise UnsafePickleError(
            f"{self.source}: the pickle asks for {module}.{name}, which a plain-data file never needs; "
            "refused without running it (only containers and scalars are read)")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: the pickle holds a persistent id ({pid!r}); refused")


def loads_plain_pickle(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` holding only plain containers and scalars (see the module docstring).

    Raises:
        UnsafePickleError: the pickle names a global (class, function) or a persistent id.
        ValueError: the bytes are not a valid pickle (the message names ``source``).
    """
    try:
        value = _PlainUnpickler(io.BytesIO(data), source).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, UnicodeError, MemoryError, RecursionError) as err:
        raise ValueError(f"{source}: not a readable pickle ({type(err).__name__}: {err})") from None
    check_plain(value, source)
    return value


def load_plain_pickle(path: PathLike) -> Any:
    """Read the pickle file ``path`` with :func:`loads_plain_pickle`; a missing file is a clear error."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pickle file not found: {path}")
    with open(path, "rb") as handle:
        return loads_plain_pickle(handle.read(), str(path))


def check_plain(value: Any, source: str) -> None:
    """Raise :class:`UnsafePickleError` unless ``value`` is made of plain containers and scalars."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif not isinstance(item, _PLAIN_SCALARS):
            raise UnsafePickleError(f"{source}: the pickle holds a {type(item).__name__}, not plain data")
