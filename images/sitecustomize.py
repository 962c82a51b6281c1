"""Make SIGTERM stop a Python process that runs as a container's PID 1.

The kernel delivers no signal to PID 1 of a PID namespace unless the process installed
a handler for it, so a plain ``python -m ...`` pipeline ignores the SIGTERM that
kubelet sends on pod deletion and waits out the whole grace period before SIGKILL.
Python imports ``sitecustomize`` at start-up (before the program), so every image
installs this file into its venv: as PID 1 with SIGTERM at its default, it turns
SIGTERM into ``SystemExit(143)`` (128 + 15, what a shell reports), which runs
``finally`` blocks and atexit hooks. Programs that handle SIGTERM themselves (Kopf,
the model server) replace the handler later, as they would anywhere else.
See docs/images.md.
"""

import os
import signal
import sys

if os.getpid() == 1 and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

    def _exit_on_sigterm(signum, frame):
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
