#!/bin/sh
# greet 1.9.0: ignores its parameters, answers with its version.
cat >/dev/null
printf '{"greeting": "hello, world", "version": "%s"}\n' "$SCRIPT_VERSION"
