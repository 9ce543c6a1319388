"""Peak memory (whole process tree) of ``heroes scan`` over 20 files that each declare 49 Mpx, and the machine.

The 20 files, five of each: a 65-byte PNG declaring 1 x 49,000,000 pixels; a 7000 x 7000 JPEG frame header over
16 x 16 pixels of data (633 bytes); a real, uniform 7000 x 7000 PNG; a real, uniform 7000 x 7000 JPEG. Each scan
runs as ``python -m heroes scan`` in a child process whose resident memory, summed over it and its workers, is
sampled every few milliseconds (psutil). With ``--fillers N`` (default 200) a second scan adds N small images, enough
for the scan's two worker processes; a third scans the fillers alone, the baseline of the second.

    python benchmarks/hostile_scan_memory.py [--fillers 200] [--heroes PATH]

``--heroes`` measures another checkout's package (the folder holding ``heroes/``), e.g. an exported older commit.
"""

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from PIL import Image

from heroes.data.synthetic.hostile import jpeg_claiming, png_claiming
from heroes.machine import describe as hardware

SIDE = 7000  # 49,000,000 pixels, under the 50 Mpx limit
PER_KIND = 5


def real(image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (SIDE, SIDE), (40, 120, 200)).save(buffer, image_format)
    return buffer.getvalue()


def write_hostile(folder: Path) -> None:
    folder.mkdir(parents=True)
    kinds = {"tall.png": png_claiming(1, SIDE * SIDE), "claims.jpg": jpeg_claiming(SIDE, SIDE), "real.png": real("PNG"), "real.jpg": real("JPEG")}
    for name, data in kinds.items():
        for index in range(PER_KIND):
            (folder / f"{index}_{name}").write_bytes(data)


def write_fillers(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for index in range(count):
        Image.new("RGB", (64, 64), (index % 256, 80, 160)).save(folder / f"{index:04d}.png")


def peak_tree_rss(command: list, env: dict, cwd: Path) -> tuple:
    """(peak resident bytes of the process and all its children, summed at each sample; wall seconds; output)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    root, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(_rss(member) for member in tree))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.003)
    output = process.stdout.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"scan failed ({process.returncode}):\n{output}")
    return peak, time.perf_counter() - started, output


def _rss(member) -> int:
    try:
        return member.memory_info().rss
    except psutil.NoSuchProcess:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fillers", type=int, default=200, help="small images added in the pooled scan (200)")
    parser.add_argument("--heroes", help="folder holding the heroes package to measure (default: this checkout)")
    args = parser.parse_args()
    package = Path(args.heroes).resolve() if args.heroes else Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory(prefix="heroes-hostile-") as folder:
        root = Path(folder)
        write_hostile(root / "hostile" / "declared_49mpx")
        write_fillers(root / "fillers" / "small", args.fillers)
        shutil.copytree(root / "hostile" / "declared_49mpx", root / "pooled" / "declared_49mpx")
        shutil.copytree(root / "fillers" / "small", root / "pooled" / "small")
        runs = {"20 hostile files (serial)": "hostile", f"20 hostile + {args.fillers} small (2 workers)": "pooled",
                f"{args.fillers} small alone (2 workers, baseline)": "fillers"}
        results = {}
        for title, name in runs.items():
            command = [sys.executable, "-m", "heroes", "scan", str(root / name), "--out", str(root / f"{name}.csv")]
            peak, seconds, output = peak_tree_rss(command, env, root)  # run outside any checkout: PYTHONPATH picks
            results[title] = {"peak_mib": round(peak / 2**20, 1), "seconds": round(seconds, 2)}
            print(f"{title:<42} peak {peak / 2**20:8.1f} MiB  {seconds:6.2f} s")
        print(output.strip().splitlines()[0] if output.strip() else "")
    print(json.dumps({"package": str(package), "results": results, "machine": hardware()}, indent=2))


if __name__ == "__main__":
    main()
