#!/bin/sh
# sleeper: spawns a long sleep in the background, records "<own pid> <child pid>"
# in the pid_file parameter, then waits for the child: only a kill of the whole
# process group ends it early.
params=$(cat)
pid_file=$(printf '%s' "$params" | sed -n 's/.*"pid_file": *"\([^"]*\)".*/\1/p')
seconds=$(printf '%s' "$params" | sed -n 's/.*"seconds": *\([0-9][0-9]*\).*/\1/p')
sleep "${seconds:-300}" &
echo "$$ $!" >"$pid_file.tmp" && mv "$pid_file.tmp" "$pid_file"
echo "sleeping ${seconds:-300}s" >&2
wait
echo '{"slept": true}'
