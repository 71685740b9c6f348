"""The HDF5 checkpoint format: one ``.h5`` file per save, no pickle anywhere.

Layout of a checkpoint file::

    /                       attrs: format="rlcli-checkpoint", format_version, rlcli_version, algo,
                                   config (resolved TOML text), step (env steps), and any scalar counters
    /tensors/<group>/<key>  one dataset per tensor: the model's and optimizer's state, normalisation
                            statistics, RNG states (as uint8 / int arrays), env state arrays, ...
    /json/<name>            small JSON documents (optimizer param groups, numpy RNG states) as strings

Nested dicts are flattened with "/" separators, so an optimizer state ``{"state": {0: {"exp_avg": t}}}``
becomes ``/tensors/optimizer/state/0/exp_avg``. Writes are atomic: a temporary file in the same folder is
written, flushed, fsynced and renamed over the target, so a crash leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from rlcli.storage.errors import CorruptFileError

FORMAT = "rlcli-checkpoint"
FORMAT_VERSION = 1


def _flatten(tree: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(tree, dict):
        for k, v in tree.items():
            _flatten(v, f"{prefix}/{k}" if prefix else str(k), out)
    else:
        out[prefix] = tree


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.numpy()
    return np.asarray(value)


def atomic_write_h5(path: Path, write: Any) -> None:
    """Call ``write(h5file)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            write(f)
            f.flush()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(path: Path, tensors: dict[str, Any], attrs: dict[str, Any],
                    documents: dict[str, Any] | None = None) -> None:
    """Write a checkpoint atomically.

    tensors: nested dict of tensors / arrays / python numbers (e.g. ``{"model": state_dict}``).
    attrs: scalar attributes (str, int, float, bool) on the root, e.g. step counters and the config text.
    documents: small JSON-serialisable objects stored as text (never pickle).
    """
    flat: dict[str, Any] = {}
    _flatten(tensors, "", flat)

    def write(f: h5py.File) -> None:
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
            raise CorruptFileError(self.path, f"it has no '{group}' state")
        return out


def read_checkpoint_attrs(path: Path | str) -> dict[str, Any]:
    """Only the attributes of a checkpoint (algo, step, config, ...), without reading its tensors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise CorruptFileError(path, "it is not an rlcli checkpoint")
            return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    except CorruptFileError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise CorruptFileError(path, str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Read a whole checkpoint; a file that is not a readable rlcli checkpoint raises CorruptFileError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise CorruptFileError(path, "it is not an rlcli checkpoint")
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            flat: dict[str, np.ndarray] = {}
            dtypes: dict[str, str] = {}

            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    flat[name] = obj[()]
                    if "torch_dtype" in obj.attrs:
                        dtypes[name] = obj.attrs["torch_dtype"]

            f["tensors"].visititems(visit)
            documents = {}
            for name, ds in f["json"].items():
                raw = ds[()]
                documents[name] = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except CorruptFileError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise CorruptFileError(path, str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    return Checkpoint(path, attrs, flat, dtypes, documents)


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
