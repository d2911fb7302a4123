"""A run forked by `tierflow serve`'s fork server is not the server's child, yet must die with it."""

from __future__ import annotations

import subprocess
import sys
import time

WATCHER = ("import sys, time\n"
           "from tierflow.process import die_with_process\n"
           "print(die_with_process(int(sys.argv[1])), flush=True)\n"
           "time.sleep(60)\n")


def test_a_process_dies_with_a_process_that_is_not_its_parent():
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watcher = subprocess.Popen([sys.executable, "-c", WATCHER, str(server.pid)], stdout=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout.readline().strip() == "True"  # it watches the server now
        assert watcher.poll() is None
        server.kill()
        server.wait()
        deadline = time.monotonic() + 10
        while watcher.poll() is None:
            assert time.monotonic() < deadline, "the watcher outlived the process it watched"
            time.sleep(0.05)
        assert watcher.returncode == -9
    finally:
        for process in (server, watcher):
            if process.poll() is None:
                process.kill()
                process.wait()


def test_a_process_whose_server_is_already_gone_exits_at_once():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    watcher = subprocess.run([sys.executable, "-c", WATCHER, str(gone.pid)], capture_output=True, text=True,
                             timeout=30)
    assert watcher.returncode == 1 and watcher.stdout == ""
