#!/usr/bin/env bash
# Runs every Fuzz* target of the module for a short time ($1, default 5s).
#
# A failing input is always a failure: go test writes it to
# testdata/fuzz/<target>/ and this script exits non-zero. A run that fails
# WITHOUT writing an input is Go 1.26's fuzz coordinator racing its own
# -fuzztime deadline ("context deadline exceeded" on a busy machine,
# go.dev/issue/75804, fixed in Go 1.27): that target is run once more.
set -euo pipefail
time=${1:-5s}

# count prints how many files directory $1 holds (0 when it does not exist).
count() { if [[ -d $1 ]]; then find "$1" -type f | wc -l; else echo 0; fi; }

for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | awk '{print $2}' | sort -u); do
		corpus="$dir/testdata/fuzz/$f"
		for attempt in 1 2; do
			echo "fuzz $pkg $f ($time)"
			before=$(count "$corpus")
			log=$(mktemp)
			if go test -run '^$' -fuzz "^$f\$" -fuzztime "$time" "$pkg" 2>&1 | tee "$log"; then
				rm -f "$log"
				break
			fi
			after=$(count "$corpus")
			if [[ $after -gt $before || $attempt -eq 2 ]] || ! grep -q 'context deadline exceeded' "$log"; then
				rm -f "$log"
				echo "fuzz: $f failed" >&2
				exit 1
			fi
			rm -f "$log"
			echo "fuzz: $f stopped with Go's fuzztime race and no failing input (go.dev/issue/75804); running it again" >&2
		done
	done
done
