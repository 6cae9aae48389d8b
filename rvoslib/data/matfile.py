"""Read one numeric array from a MATLAB .mat file (JHMDB's ``puppet_mask.mat``) without scipy.

Level-5 MAT files (MATLAB 5 to 7.2, what ``save`` writes by default): a 128-byte header
whose last two bytes give the byte order (``IM``: little-endian), then data elements,
each an 8-byte tag ``(type: uint32, nbytes: uint32)`` and its data padded to 8 bytes (or
a 4-byte "small element" packed into the tag). A variable is an ``miMATRIX`` element
(possibly inside an ``miCOMPRESSED`` zlib stream) of sub-elements: array flags (class),
dimensions, name, real part. Data is column-major. MATLAB 7.3 files are HDF5 and are
read with h5py when it is installed.

Only numeric and logical arrays are decoded; cells, structs, sparse and complex arrays
raise ``ValueError`` naming the file.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Union

import numpy as np

PathLike = Union[str, os.PathLike]

MI_MATRIX, MI_COMPRESSED = 14, 15
_MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_MX_DTYPES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8", 15: "u8"}
_COMPLEX_FLAG = 0x0800


def read_mat_variable(path: PathLike, name: str) -> np.ndarray:
    """The numeric array ``name`` of the .mat file ``path``, with MATLAB's shape (e.g. (H, W, T)).

    Raises:
        FileNotFoundError: no such file.
        KeyError: the file has no variable ``name`` (the message lists the ones it has).
        ValueError: not a MAT file, or the variable is not a plain numeric array.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MAT file not found: {path}")
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 128 or not data[:6] == b"MATLAB":
        raise ValueError(f"{path}: not a MATLAB .mat file (no 'MATLAB' header)")
    if b"7.3 MAT-file" in data[:116] or data[:8] == b"\x89HDF\r\n\x1a\n":
        return _read_hdf5_variable(path, name)
    order = {b"IM": "<", b"MI": ">"}.get(data[126:128])
    if order is None:
        raise ValueError(f"{path}: unknown byte-order mark {data[126:128]!r}")
    names = []
    for element_type, payload in _elements(data, 128, order, path):
        if element_type == MI_COMPRESSED:
            inner = zlib.decompress(payload)
            element_type, payload = next(_elements(inner, 0, order, path))
        if element_type != MI_MATRIX:
            continue
        var_name, array = _matrix(payload, order, path)
        if var_name == name:
            if array is None:
                raise ValueError(f"{path}: variable {name!r} is not a plain numeric array")
            return array
        names.append(var_name)
    raise KeyError(f"{path}: no variable {name!r} (it has {names})")


def _elements(data: bytes, offset: int, order: str, path: PathLike):
    """Yield ``(type, payload bytes)`` of the data elements in ``data`` from ``offset``."""
    while offset + 8 <= len(data):
        element_type, nbytes = struct.unpack_from(f"{order}II", data, offset)
        if element_type >> 16:  # small element: nbytes in the upper half, data in the next 4 bytes
            nbytes, element_type = element_type >> 16, element_type & 0xFFFF
            yield element_type, data[offset + 4: offset + 4 + nbytes]
            offset += 8
            continue
        end = offset + 8 + nbytes
        if end > len(data):
            raise ValueError(f"{path}: truncated data element at byte {offset}")
        yield element_type, data[offset + 8: end]
        offset = end if element_type == MI_COMPRESSED else offset + 8 + ((nbytes + 7) // 8) * 8


def _matrix(payload: bytes, order: str, path: PathLike) -> tuple[str, "np.ndarray | None"]:
    """``(name, array or None when not plain numeric)`` of an miMATRIX payload."""
    parts = list(_elements(payload, 0, order, path))
    if len(parts) < 3:
        return "", None
    flags = np.frombuffer(parts[0][1], dtype=f"{order}u4")
    mx_class, is_complex = int(flags[0] & 0xFF), bool(flags[0] & _COMPLEX_FLAG)
    dims = tuple(int(d) for d in np.frombuffer(parts[1][1], dtype=f"{order}i4"))
    name = parts[2][1].decode("ascii", errors="replace")
    if mx_class not in _MX_DTYPES or is_complex or len(parts) < 4 or parts[3][0] not in _MI_DTYPES:
        return name, None
    real_type, real = parts[3]
    values = np.frombuffer(real, dtype=f"{order}{_MI_DTYPES[real_type]}")
    if values.size != int(np.prod(dims)):
        raise ValueError(f"{path}: variable {name!r} has {values.size} values for dimensions {dims}")
    return name, values.astype(_MX_DTYPES[mx_class]).reshape(dims, order="F")


def _read_hdf5_variable(path: PathLike, name: str) -> np.ndarray:
    """A variable of a MATLAB 7.3 (HDF5) file; h5py stores it with reversed dimensions."""
    try:
        import h5py
    except ImportError as error:
        raise ModuleNotFoundError(f"{path} is a MATLAB 7.3 (HDF5) file: reading it needs h5py "
                                  "(pip install h5py)") from error
    with h5py.File(path, "r") as handle:
        if name not in handle:
            raise KeyError(f"{path}: no variable {name!r} (it has {sorted(handle.keys())})")
        return np.asarray(handle[name]).T
