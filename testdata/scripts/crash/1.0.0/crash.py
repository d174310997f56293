"""crash: fails on purpose, by a signal or by a non-zero exit."""
import json
import os
import signal
import sys

params = json.load(sys.stdin)
print("something went wrong: about to fail by " + params.get("mode", "exit"), file=sys.stderr)
sys.stderr.flush()
if params.get("mode") == "signal":
    os.kill(os.getpid(), signal.SIGSEGV)
sys.exit(3)
