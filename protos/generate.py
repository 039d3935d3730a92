"""Generates the Python stubs of protos/ into the client package
(ledger_client/generated): the one generation command, used by `make proto`
and by the wheel build (setup.py). grpcio-tools is a build requirement only;
mypy-protobuf, when installed, adds precise type stubs (.pyi)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from importlib import resources
from pathlib import Path

PROTOS = Path(__file__).resolve().parent
PACKAGE = "ledger_client/generated"


def generate(out_dir: Path) -> list[Path]:
    """Write ledger_client/generated/**/*_pb2*.py under out_dir; return the files."""
    from grpc_tools import protoc

    sources = sorted(PROTOS.rglob("*.proto"))
    include = resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        f"-I{PACKAGE}={PROTOS}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
    ]
    plugin = shutil.which("protoc-gen-mypy", path=str(Path(sys.executable).parent))
    # The plugin runs with this process's environment: in pip's isolated build
    # environment it is found beside the interpreter but cannot import its module.
    if plugin and importlib.util.find_spec("mypy_protobuf") is not None:
        args += [f"--plugin=protoc-gen-mypy={plugin}", f"--mypy_out={out_dir}"]
    args += [f"{PACKAGE}/{source.relative_to(PROTOS).as_posix()}" for source in sources]
    out_dir.mkdir(parents=True, exist_ok=True)
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    return sorted((out_dir / PACKAGE).rglob("*_pb2*.py*"))


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(path)
