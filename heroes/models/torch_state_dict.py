"""Read a legacy (non-zip) ``torch.save`` state dict into numpy arrays, without torch and without running code."""

import hashlib
import io
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy

from heroes.errors import UserError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
# Storage classes torch pickles by name; the data itself is raw little-endian bytes after the pickles.
_STORAGE_DTYPES = {
    "FloatStorage": numpy.dtype("<f4"),
    "DoubleStorage": numpy.dtype("<f8"),
    "HalfStorage": numpy.dtype("<f2"),
    "LongStorage": numpy.dtype("<i8"),
}


class _Storage:
    """A storage named by the pickle; its data only arrives after the pickles, so tensors are built late."""

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.data = None


class _Tensor:
    """What ``torch._utils._rebuild_tensor_v2`` returns here: a recipe for a strided numpy view."""

    def __init__(self, storage, storage_offset, size, stride, *_ignored):
        self.storage, self.offset, self.size, self.stride = storage, storage_offset, tuple(size), tuple(stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a state dict needs; anything else is refused, never imported."""

    def __init__(self, stream, path):
        super().__init__(stream)
        self.path = path
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _Tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise UserError(f"{self.path}: refused to load pickled global {module}.{name} (not a plain state dict)")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata]); views are from torch < 1.0, unsupported.
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage" and pid[5:] in ((), (None,))):
            raise UserError(f"{self.path}: unsupported persistent id {pid!r:.80}")
        _, dtype, key, _location, numel = pid[:5]
        if not isinstance(dtype, numpy.dtype):
            raise UserError(f"{self.path}: storage {key!r} has no known storage type")
        storage = self.storages.setdefault(str(key), _Storage(str(key), dtype, int(numel)))
        if storage.dtype != dtype or storage.numel != int(numel):
            raise UserError(f"{self.path}: storage {key!r} is declared twice with different types or sizes")
        return storage


def _load_pickle(stream, path, storages=None):
    unpickler = _RestrictedUnpickler(stream, path)
    try:
        result = unpickler.load()
    except UserError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as error:
        raise UserError(f"{path}: not a legacy torch file or truncated ({type(error).__name__}: {error})") from None
    if storages is not None:
        storages.update(unpickler.storages)
    return result


def _check_header(stream, path):
    if _load_pickle(stream, path) != MAGIC_NUMBER:
        raise UserError(f"{path}: wrong magic number, not a legacy torch.save file (zip-format files are unsupported)")
    protocol = _load_pickle(stream, path)
    if protocol != PROTOCOL_VERSION:
        raise UserError(f"{path}: torch serialization protocol {protocol!r}, expected {PROTOCOL_VERSION}")
    sys_info = _load_pickle(stream, path)
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian", True)):
        raise UserError(f"{path}: big-endian torch files are unsupported")


def _read_storages(stream, path, storages, keys):
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(storages):
        raise UserError(f"{path}: storage key list does not match the storages the state dict uses")
    for key in map(str, keys):
        storage = storages[key]
        count = int.from_bytes(stream.read(8), "little", signed=True)
        nbytes = storage.numel * storage.dtype.itemsize
        data = stream.read(nbytes)
        if count != storage.numel or len(data) != nbytes:
            raise UserError(f"{path}: truncated or corrupt data for storage {key!r} ({len(data)} of {nbytes} bytes)")
        storage.data = numpy.frombuffer(data, dtype=storage.dtype)


def _inside(numel, offset, size, stride):
    """Whether every element of the strided view lies in a storage of ``numel`` elements (as_strided trusts us)."""
    if len(size) != len(stride) or min((offset, *size, *stride)) < 0:
        return False
    return 0 in size or offset + sum((n - 1) * s for n, s in zip(size, stride)) < numel


def _materialise(tensor, name, path):
    """A contiguous copy of the strided view, after checking the view stays inside its storage."""
    storage, offset, size, stride = tensor.storage, tensor.offset, tensor.size, tensor.stride
    if not _inside(storage.numel, offset, size, stride):
        raise UserError(f"{path}: tensor {name!r} lies outside its storage")
    if 0 in size:
        return numpy.zeros(size, dtype=storage.dtype.newbyteorder("="))
    itemsize = storage.dtype.itemsize
    view = numpy.lib.stride_tricks.as_strided(
        storage.data[offset:], shape=size, strides=[s * itemsize for s in stride], writeable=False
    )
    # A real copy: never a view keeping the whole file's bytes alive, and writeable.
    return numpy.array(view, dtype=storage.dtype.newbyteorder("="), order="C", copy=True)


def read_state_dict(path, expected_sha256=None) -> dict[str, numpy.ndarray]:
    """The ``{name: array}`` of a legacy ``torch.save(state_dict)`` file; refuses any other pickled global."""
    path = Path(path)
    raw = path.read_bytes()
    if expected_sha256 is not None and hashlib.sha256(raw).hexdigest() != expected_sha256.lower():
        raise UserError(f"{path}: sha256 differs from the expected {expected_sha256} (file altered or truncated)")
    stream, storages = io.BytesIO(raw), {}
    _check_header(stream, path)
    state = _load_pickle(stream, path, storages)
    _read_storages(stream, path, storages, _load_pickle(stream, path))
    if not isinstance(state, dict) or not all(isinstance(v, _Tensor) for v in state.values()):
        raise UserError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return {str(name): _materialise(tensor, name, path) for name, tensor in state.items()}
