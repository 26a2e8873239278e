"""Plain data across the sandbox wall, without pickle.

A probe returns a dict of str -> numpy array (numeric or bool), python int/float/bool/str, None,
or (nested) lists and dicts of those. :func:`dump` (in the sandbox) writes it as ``NAME.json``
plus ``NAME.npz``; :func:`load` (in the trusted grader) reads it back with ``allow_pickle=False``
and checks every value's exact type, so nothing but plain data reaches a judge.
"""

from __future__ import annotations

import json
import math
import sys
import zipfile
from pathlib import Path

import numpy as np

MAX_JSON_BYTES = 20 * 2**20
MAX_NPZ_BYTES = 200 * 2**20
MAX_DEPTH = 8
_ARRAY_KEY = "__ndarray__"


class TransportError(ValueError):
    """The data is not plain data (or is too large)."""


def _encode(value, arrays: dict, depth: int):
    if depth > MAX_DEPTH:
        raise TransportError("nested too deeply")
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        value = value.item()
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TransportError(f"array of dtype {value.dtype} (only numeric or bool arrays)")
        key = f"a{len(arrays)}"
        arrays[key] = np.ascontiguousarray(value)
        return {_ARRAY_KEY: key}
    if type(value) in (list, tuple):
        return [_encode(v, arrays, depth + 1) for v in value]
    if type(value) is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str or k.startswith("__"):
                raise TransportError(f"dict key {k!r} (keys are plain strings not starting with '__')")
            out[k] = _encode(v, arrays, depth + 1)
        return out
    raise TransportError(f"value of type {type(value).__name__}")


def dump(value, folder, name: str) -> None:
    """Write ``value`` as ``folder/name.json`` (+ ``name.npz`` for arrays). Raises TransportError."""
    arrays: dict[str, np.ndarray] = {}
    doc = _encode(value, arrays, 0)
    folder = Path(folder)
    if arrays:
        np.savez(folder / f"{name}.npz", **arrays)
    (folder / f"{name}.json").write_text(json.dumps({"value": doc, "arrays": sorted(arrays)}))


def _decode(doc, arrays, depth: int):
    if depth > MAX_DEPTH:
        raise TransportError("nested too deeply")
    if doc is None or type(doc) in (bool, int, str, float):
        return doc
    if type(doc) is list:
        return [_decode(v, arrays, depth + 1) for v in doc]
    if type(doc) is dict:
        if set(doc) == {_ARRAY_KEY}:
            key = doc[_ARRAY_KEY]
            if type(key) is not str or key not in arrays:
                raise TransportError("reference to a missing array")
            return arrays[key]
        if set(doc) == {"__float__"} and doc["__float__"] in ("nan", "inf", "-inf"):
            return float(doc["__float__"])
        if any(type(k) is not str or k.startswith("__") for k in doc):
            raise TransportError("unexpected dict key")
        return {k: _decode(v, arrays, depth + 1) for k, v in doc.items()}
    raise TransportError(f"value of type {type(doc).__name__}")


def load(folder, name: str):
    """Read what :func:`dump` wrote, trusting nothing: size caps, no pickle, exact types only."""
    folder = Path(folder)
    jpath, npath = folder / f"{name}.json", folder / f"{name}.npz"
    if jpath.is_symlink() or not jpath.is_file():
        raise TransportError("no output was written")
    if jpath.stat().st_size > MAX_JSON_BYTES:
        raise TransportError("output too large")
    try:
        doc = json.loads(jpath.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise TransportError("output is not valid JSON") from e
    if type(doc) is not dict or type(doc.get("arrays")) is not list:
        raise TransportError("output has the wrong layout")
    arrays: dict[str, np.ndarray] = {}
    if doc["arrays"]:
        if npath.is_symlink() or not npath.is_file() or npath.stat().st_size > MAX_NPZ_BYTES:
            raise TransportError("array file missing or too large")
        try:
            with zipfile.ZipFile(npath) as zf:  # members are decompressed: refuse a zip bomb
                if sum(i.file_size for i in zf.infolist()) > MAX_NPZ_BYTES:
                    raise TransportError("arrays too large")
            with np.load(npath, allow_pickle=False) as z:
                for key in doc["arrays"]:
                    a = z[key]
                    if type(a) is not np.ndarray or a.dtype.kind not in "biuf" or a.dtype.hasobject:
                        raise TransportError("array of a non-numeric dtype")
                    arrays[key] = a
        except TransportError:
            raise
        except Exception as e:  # corrupt zip, pickled arrays, missing keys
            raise TransportError(f"array file unreadable ({type(e).__name__})") from e
    return _decode(doc["value"], arrays, 0)


def read_json(path: Path, cap: int = 1 << 20) -> dict | None:
    """A small JSON object the sandbox wrote (None: missing, a link, too large or not an object)."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > cap:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return None
