"""greet 1.0.0: reads the parameters (JSON) on stdin, writes the result (JSON) on stdout."""
import json
import os
import sys

params = json.load(sys.stdin)
name = params["name"]
print("greeting " + name, file=sys.stderr)
json.dump({
    "greeting": " ".join(["hello"] * params.get("times", 1)) + ", " + name,
    "version": os.environ["SCRIPT_VERSION"],
    "request_id": os.environ.get("REQUEST_ID", ""),
}, sys.stdout)
