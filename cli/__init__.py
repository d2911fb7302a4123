"""The `tierflow` command line (a face: it may start flows; nothing below imports it)."""

import os

# Without PREFECT_API_URL, Prefect starts a temporary local API in each process and waits 20 s for
# it by default. On a busy two-core machine it needs nearly that (18 s measured), and a command
# that times out there has done nothing at all, so give it two minutes. Set before Prefect loads
# its settings; an explicit value in the environment wins.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
