"""A batch process allocates from at most `MALLOC_ARENAS` glibc arenas, however many threads it
runs (flows/memory.py), unless `MALLOC_ARENA_MAX` says otherwise."""

from __future__ import annotations

import ctypes.util
import os
import platform
import subprocess
import sys

import pytest

from flows.memory import MALLOC_ARENAS

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's allocator only"
)

# Sixteen threads each hold some C-heap allocations at once, then glibc's malloc_info counts the
# arenas ("<heap nr=...>") the process has.
_PROBE = """
import ctypes, ctypes.util, sys, tempfile, threading
from flows.memory import limit_malloc_arenas
print("limited" if (sys.argv[1] == "limit" and limit_malloc_arenas()) else "default")
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
    print(open(out.name).read().count("<heap nr="))
hold.set()
for t in threads: t.join()
"""


def _arenas(mode: str, **env: str) -> tuple[str, int]:
    environment = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True,
                         env=environment, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    said, count = out.stdout.split()
    return said, int(count)


def test_threads_share_the_capped_arenas():
    assert ctypes.util.find_library("c")
    assert _arenas("limit") == ("limited", MALLOC_ARENAS)
    said, default = _arenas("none")
    assert said == "default" and default > MALLOC_ARENAS  # what the cap saves: an arena per thread


def test_an_arena_max_in_the_environment_rules():
    said, count = _arenas("limit", MALLOC_ARENA_MAX="4")
    assert said == "default" and count > MALLOC_ARENAS
