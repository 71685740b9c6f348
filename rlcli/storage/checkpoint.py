"""The HDF5 checkpoint format: one ``.h5`` file per save, no pickle anywhere.

Layout of a checkpoint file::

    /                       attrs: format="rlcli-checkpoint", format_version, rlcli_version, algo,
                                   config (resolved TOML text), step (env steps), and any scalar counters
    /tensors/<group>/<key>  one dataset per tensor: the model's and optimizer's state, normalisation
                            statistics, RNG states (as uint8 / int arrays), env state arrays, ...
    /json/<name>            small JSON documents (optimizer param groups, numpy RNG states) as strings

Nested dicts are flattened with "/" separators, so an optimizer state ``{"state": {0: {"exp_avg": t}}}``
becomes ``/tensors/optimizer/state/0/exp_avg``. Writes are atomic (:mod:`rlcli.storage.files`): a unique
temporary file beside the target is written, fsynced and renamed over it, so a crash or a full disk leaves
the previous checkpoint intact. A tensor holding NaN or Inf is never written (:class:`NonFiniteError`).

Loading validates the whole file before anything uses it, and refuses with one line (exit 2): a file over
the size cap, HDF5 links, external storage or virtual datasets, an unknown format or a newer version, an
attribute of the wrong type or a config that is not TOML, a tensor that is not numbers, an unknown or
inconsistent ``torch_dtype``, a declared shape over the cap, NaN or Inf values, and (through
:meth:`Checkpoint.check_tensors`) a weight whose shape or dtype differs from the model the config builds.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlcli.storage.errors import CorruptFileError, InvalidFileError, NonFiniteError
from rlcli.storage.files import open_h5_bytes, read_bytes, write_h5_atomic

FORMAT = "rlcli-checkpoint"
FORMAT_VERSION = 1
DEFAULT_MAX_BYTES = 4 * 2**30  # a checkpoint read without a model to compare with (sum of its tensors)
MAX_DOCUMENT_BYTES = 16 * 2**20  # one JSON document
# torch dtype names a checkpoint may declare -> numpy dtypes its dataset may have (bfloat16 is stored as float32)
TORCH_DTYPES = {"float32": ("float32",), "float64": ("float64",), "float16": ("float16",),
                "bfloat16": ("float32",), "int64": ("int64",), "int32": ("int32",), "int16": ("int16",),
                "int8": ("int8",), "uint8": ("uint8",), "bool": ("bool",)}
# root attributes with a fixed type (others must be scalars: str, int, float or bool)
ATTR_TYPES: dict[str, type] = {"format": str, "format_version": int, "rlcli_version": str, "algo": str,
                               "config": str, "step": int, "best_eval_return": float, "wall_time": float,
                               "eval_return": float}


def _flatten(tree: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(tree, dict):
        for k, v in tree.items():
            _flatten(v, f"{prefix}/{k}" if prefix else str(k), out)
    else:
        out[prefix] = tree


def flatten(tree: dict[str, Any]) -> dict[str, Any]:
    """``{"model": {"w": t}}`` -> ``{"model/w": t}``, the keys a checkpoint stores tensors under."""
    out: dict[str, Any] = {}
    _flatten(tree, "", out)
    return out


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.numpy()
    return np.asarray(value)


def first_non_finite(tensors: dict[str, Any]) -> str | None:
    """The flat key of the first floating-point tensor holding NaN or Inf, or None when all are finite."""
    for key, value in flatten(tensors).items():
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                return key
        elif isinstance(value, float):
            if not math.isfinite(value):
                return key
        elif isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.isfinite(value).all():
            return key
    return None


def atomic_write_h5(path: Path, write: Any) -> None:
    """Call ``write(h5file)`` on an in-memory HDF5 file, then write it atomically to ``path``."""
    write_h5_atomic(path, write)


def save_checkpoint(path: Path, tensors: dict[str, Any], attrs: dict[str, Any],
                    documents: dict[str, Any] | None = None) -> None:
    """Write a checkpoint atomically; NonFiniteError (nothing written) when a tensor holds NaN or Inf.

    tensors: nested dict of tensors / arrays / python numbers (e.g. ``{"model": state_dict}``).
    attrs: scalar attributes (str, int, float, bool) on the root, e.g. step counters and the config text.
    documents: small JSON-serialisable objects stored as text (never pickle).
    """
    bad = first_non_finite(tensors)
    if bad is not None:
        raise NonFiniteError(f"'{bad}' holds NaN or Inf; {path} was not written")
    flat = flatten(tensors)

    def write(f: Any) -> None:
        from rlcli import __version__

        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["rlcli_version"] = __version__
        for k, v in attrs.items():
            f.attrs[k] = v
        group = f.create_group("tensors")
        for key, value in flat.items():
            arr = _to_numpy(value)
            ds = group.create_dataset(key, data=arr)
            if isinstance(value, torch.Tensor):
                ds.attrs["torch_dtype"] = str(value.dtype).removeprefix("torch.")
        docs = f.create_group("json")
        for name, doc in (documents or {}).items():
            docs.create_dataset(name, data=json.dumps(doc))

    atomic_write_h5(path, write)


class Checkpoint:
    """A loaded checkpoint: ``attrs``, ``documents`` and ``tensors(group)`` as nested dicts of tensors."""

    def __init__(self, path: Path, attrs: dict[str, Any], flat: dict[str, np.ndarray],
                 dtypes: dict[str, str], documents: dict[str, Any]):
        self.path = path
        self.attrs = attrs
        self.documents = documents
        self._flat = flat
        self._dtypes = dtypes

    def has(self, group: str) -> bool:
        return any(k == group or k.startswith(group + "/") for k in self._flat)

    def tensors(self, group: str) -> dict[str, Any]:
        """The nested dict saved under ``group``; torch tensors where a tensor was saved, else numpy."""
        out: dict[str, Any] = {}
        prefix = group + "/"
        for key, arr in self._flat.items():
            if not key.startswith(prefix):
                continue
            value: Any = arr
            if key in self._dtypes:
                value = torch.from_numpy(np.array(arr))
                dtype = getattr(torch, self._dtypes[key])
                if value.dtype != dtype:
                    value = value.to(dtype)
            parts = key[len(prefix):].split("/")
            node = out
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = value
        if not out:
            raise InvalidFileError(self.path, f"it has no '{group}' state")
        return out

    def check_tensors(self, expected: dict[str, Any], shape_groups: Iterable[str] = ("model",),
                      groups: Iterable[str] | None = None) -> None:
        """Compare with the state a freshly built algorithm has (``expected``: nested dict as ``state()``).

        In ``shape_groups`` (the network's weights: their shapes follow from the config alone) the
        checkpoint must hold exactly the expected tensors, each with the same shape and dtype. Elsewhere
        (optimizer moments that exist only after a first step, replay rows written so far, serialised RNG
        states) sizes vary, so a tensor found on both sides must only have the same dtype; whatever else
        does not fit, ``load_state`` refuses. ``groups`` restricts the comparison (evaluation loads only
        the weights).
        """
        shape_groups = set(shape_groups)
        wanted = {k: v for k, v in flatten(expected).items() if groups is None or k.split("/", 1)[0] in set(groups)}

        def dtype_name(value: Any) -> str:
            return str(value.dtype).removeprefix("torch.")

        for key, want in wanted.items():
            strict = key.split("/", 1)[0] in shape_groups
            if key not in self._flat:
                if strict:
                    raise InvalidFileError(self.path, f"it has no tensor '{key}', which the model this config "
                                                      f"builds needs")
                continue
            have = self._flat[key]
            want_arr = _to_numpy(want)
            have_dtype = self._dtypes.get(key, dtype_name(have))
            want_dtype = dtype_name(want) if isinstance(want, torch.Tensor) else dtype_name(want_arr)
            if have_dtype != want_dtype:
                raise InvalidFileError(self.path, f"tensor '{key}' is {have_dtype}, the model this config builds "
                                                  f"has {want_dtype}")
            if strict and have.shape != want_arr.shape:
                raise InvalidFileError(self.path, f"tensor '{key}' has shape {tuple(have.shape)}, the model "
                                                  f"this config builds has {tuple(want_arr.shape)}")
        for key in self._flat:
            if key.split("/", 1)[0] in shape_groups and key not in wanted and (
                    groups is None or key.split("/", 1)[0] in set(groups)):
                raise InvalidFileError(self.path, f"tensor '{key}' is not part of the model this config builds")


def _attr_value(path: Path, key: str, value: Any) -> Any:
    """A root attribute as a python scalar of the type :data:`ATTR_TYPES` says; InvalidFileError otherwise."""
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            raise InvalidFileError(path, f"attribute '{key}' is not text") from None
    elif isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, str | int | float | bool):
        raise InvalidFileError(path, f"attribute '{key}' is not a single value (it is {type(value).__name__})")
    want = ATTR_TYPES.get(key)
    if want is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidFileError(path, f"attribute '{key}' must be an integer, not {value!r}")
    if want is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidFileError(path, f"attribute '{key}' must be a number, not {value!r}")
        value = float(value)
        if math.isnan(value) or (value == math.inf) or (value == -math.inf and key != "best_eval_return"):
            raise InvalidFileError(path, f"attribute '{key}' is {value}")
    if want is str and not isinstance(value, str):
        raise InvalidFileError(path, f"attribute '{key}' must be text, not {value!r}")
    return value


def _read_attrs(path: Path, f: Any, require: Iterable[str]) -> dict[str, Any]:
    if f.attrs.get("format") != FORMAT and f.attrs.get("format") != FORMAT.encode():
        raise CorruptFileError(path, "it is not an rlcli checkpoint")
    attrs = {k: _attr_value(path, k, v) for k, v in f.attrs.items()}
    version = attrs.get("format_version")
    if version != FORMAT_VERSION:
        raise InvalidFileError(path, f"it is a checkpoint of format version {version}; this rlcli reads version "
                                     f"{FORMAT_VERSION}")
    for key in require:
        if key not in attrs:
            raise InvalidFileError(path, f"it has no '{key}' attribute")
    if attrs.get("step", 0) < 0:
        raise InvalidFileError(path, f"attribute 'step' is negative ({attrs['step']})")
    if "config" in attrs:
        try:
            tomllib.loads(attrs["config"])
        except tomllib.TOMLDecodeError as e:
            raise InvalidFileError(path, f"its config is not valid TOML ({e})") from None
    return attrs


def read_checkpoint_attrs(path: Path | str, require: Iterable[str] = ()) -> dict[str, Any]:
    """Only the validated attributes of a checkpoint (algo, step, config, ...)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    read_bytes(path, max_bytes=DEFAULT_MAX_BYTES, head=8)  # a denied file says so
    try:  # attributes only: opened on disk, no dataset (external storage or not) is read
        with h5py.File(path, "r", locking=False) as f:
            return _read_attrs(path, f, require)
    except CorruptFileError:
        raise
    except (OSError, ValueError, TypeError) as e:
        raise CorruptFileError(path, str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def load_checkpoint(path: Path | str, require: Iterable[str] = (), max_bytes: int = DEFAULT_MAX_BYTES) -> Checkpoint:
    """Read and validate a whole checkpoint (module docstring); CorruptFileError and its subclasses say why.

    ``require``: root attributes that must be present (a training checkpoint needs algo, config, step).
    ``max_bytes``: cap on the file and on the summed size its datasets declare.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    data = read_bytes(path, max_bytes)
    try:
        with open_h5_bytes(path, data) as f:
            attrs = _read_attrs(path, f, require)
            for name in f:
                if name not in ("tensors", "json"):
                    raise InvalidFileError(path, f"it holds '/{name}', which is no part of the format")
            if "tensors" not in f:
                raise InvalidFileError(path, "it has no tensors")
            flat, dtypes = _read_tensors(path, f["tensors"], max_bytes)
            documents = _read_documents(path, f["json"]) if "json" in f else {}
    except CorruptFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise CorruptFileError(path, str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    return Checkpoint(path, attrs, flat, dtypes, documents)


def _read_tensors(path: Path, group: Any, max_bytes: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    import h5py

    datasets: dict[str, Any] = {}
    group.visititems(lambda name, obj: datasets.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None)
    total = 0
    for name, ds in datasets.items():  # every check that needs no data first: nothing huge is read
        if ds.shape is None:
            raise InvalidFileError(path, f"tensor '{name}' is an empty HDF5 dataspace")
        if ds.dtype.kind not in "biuf" or ds.dtype.itemsize > 8:
            raise InvalidFileError(path, f"tensor '{name}' is of type {ds.dtype}, not numbers")
        total += int(np.prod(ds.shape, dtype=np.float64)) * ds.dtype.itemsize
        if total > max_bytes:
            raise InvalidFileError(path, f"its tensors declare more than {max_bytes / 2**20:.0f} MiB (tensor "
                                         f"'{name}' has shape {ds.shape})")
        if "torch_dtype" in ds.attrs:
            declared = _attr_value(path, f"tensors/{name}:torch_dtype", ds.attrs["torch_dtype"])
            if declared not in TORCH_DTYPES:
                raise InvalidFileError(path, f"tensor '{name}' declares an unknown torch_dtype {declared!r}")
            if str(ds.dtype) not in TORCH_DTYPES[declared]:
                raise InvalidFileError(path, f"tensor '{name}' is stored as {ds.dtype} but declares torch_dtype "
                                             f"{declared}")
    flat: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for name, ds in datasets.items():
        arr = ds[()]
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise InvalidFileError(path, f"tensor '{name}' holds NaN or Inf values")
        flat[name] = np.asarray(arr)
        if "torch_dtype" in ds.attrs:
            dtypes[name] = _attr_value(path, "torch_dtype", ds.attrs["torch_dtype"])
    return flat, dtypes


def _read_documents(path: Path, group: Any) -> dict[str, Any]:
    import h5py

    documents: dict[str, Any] = {}
    for name in group:
        ds = group[name]
        if not isinstance(ds, h5py.Dataset) or ds.shape != () or h5py.check_string_dtype(ds.dtype) is None:
            raise InvalidFileError(path, f"json document '{name}' is not a text value")
        raw = ds[()]
        if len(raw) > MAX_DOCUMENT_BYTES:
            raise InvalidFileError(path, f"json document '{name}' is over {MAX_DOCUMENT_BYTES // 2**20} MiB")
        try:
            documents[name] = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InvalidFileError(path, f"json document '{name}' is not JSON ({e})") from None
    return documents


def optimizer_to_tree(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Split an optimizer state_dict into tensors (per-param state) and JSON (param groups)."""
    sd = optimizer.state_dict()
    state = {str(pid): {k: (v if isinstance(v, torch.Tensor) else torch.tensor(v)) for k, v in s.items()}
             for pid, s in sd["state"].items()}
    return state, sd["param_groups"]


def optimizer_from_tree(optimizer: torch.optim.Optimizer, state: dict[str, Any],
                        param_groups: list[dict[str, Any]]) -> None:
    sd = {"state": {int(pid): dict(s) for pid, s in state.items()}, "param_groups": param_groups}
    optimizer.load_state_dict(sd)
