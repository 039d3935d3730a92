"""The wheel carries the gRPC stubs: they are generated from protos/ at build
time (protos/generate.py), never committed. Everything else is in pyproject.toml."""

from __future__ import annotations

import runpy
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithStubs(build_py):
    def run(self) -> None:
        super().run()
        generator = runpy.run_path(str(Path(__file__).parent / "protos" / "generate.py"))
        generator["generate"](Path(self.build_lib))


setup(cmdclass={"build_py": BuildPyWithStubs})
