"""A process that calls `configure_process()` (as the `tierflow` command does first) allocates
from at most `MALLOC_ARENAS` glibc arenas, however many threads it runs, and so do the processes it
starts, unless `MALLOC_ARENA_MAX` says otherwise; importing the flows alone tunes nothing."""

from __future__ import annotations

import ctypes.util
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from tierflow.process import MALLOC_ARENAS

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's allocator only"
)

ROOT = Path(__file__).resolve().parents[2]

# Sixteen threads each hold some C-heap allocations at once, then glibc's malloc_info counts the
# arenas ("<heap nr=...>") the process has. argv[1]: "configure" calls configure_process first (as
# the command line does), "import" only imports the flows, "none" neither, "child" configures and
# runs "none" in a new process.
_PROBE = """
import ctypes, ctypes.util, os, subprocess, sys, tempfile, threading
if sys.argv[1] in ("configure", "child"):
    from tierflow.process import configure_process
    configure_process()
if sys.argv[1] == "import":
    import flows.trigger
if sys.argv[1] == "child":
    sys.exit(subprocess.run([sys.executable, "-c", sys.argv[2], "none", sys.argv[2]]).returncode)
ready, hold = threading.Barrier(17), threading.Event()
def work():
    blocks = [bytearray(4096) for _ in range(64)]  # above pymalloc's 512 bytes: glibc malloc
    ready.wait(); hold.wait()
threads = [threading.Thread(target=work) for _ in range(16)]
for t in threads: t.start()
ready.wait()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile() as out:
    stream = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream)); libc.fclose(ctypes.c_void_p(stream))
    print(os.environ.get("MALLOC_ARENA_MAX", "-"), open(out.name).read().count("<heap nr="))
hold.set()
for t in threads: t.join()
"""


def _arenas(mode: str, **env: str) -> tuple[str, int]:
    """(`MALLOC_ARENA_MAX` as the probe saw it, the arenas it counted) for a probe in `mode`."""
    environment = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    out = subprocess.run([sys.executable, "-c", _PROBE, mode, _PROBE], capture_output=True, text=True,
                         check=True, env=environment, cwd=ROOT)
    said, count = out.stdout.split()
    return said, int(count)


def test_threads_of_a_configured_process_share_the_capped_arenas():
    assert ctypes.util.find_library("c")
    assert _arenas("configure") == (str(MALLOC_ARENAS), MALLOC_ARENAS)
    said, default = _arenas("none")
    assert said == "-" and default > MALLOC_ARENAS  # what the cap saves: an arena per thread


def test_importing_the_flows_tunes_nothing():
    said, count = _arenas("import")
    assert said == "-" and count > MALLOC_ARENAS


def test_the_processes_it_starts_are_capped_from_their_start():
    assert _arenas("child") == (str(MALLOC_ARENAS), MALLOC_ARENAS)


def test_an_arena_max_in_the_environment_rules():
    said, count = _arenas("configure", MALLOC_ARENA_MAX="4")
    assert said == "4" and count > MALLOC_ARENAS
