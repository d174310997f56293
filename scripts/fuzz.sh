#!/usr/bin/env bash
# Runs every Fuzz* target of the module for a short time ($1, default 5s).
set -euo pipefail
time=${1:-5s}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | awk '{print $2}' | sort -u); do
		echo "fuzz $pkg $f ($time)"
		go test -run '^$' -fuzz "^$f\$" -fuzztime "$time" "$pkg"
	done
done
