#!/usr/bin/env bash
# Checks (no argument) or updates (a version) the Swagger UI files embedded
# under caddymodule/assets/docs, against the npm package swagger-ui-dist.
# See caddymodule/assets/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
assets=caddymodule/assets
pinned=$(node -p "require('./$assets/package.json').dependencies['swagger-ui-dist']")
version=${1:-$pinned}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "swagger-ui-dist@$version" >/dev/null)
tgz=$(ls "$tmp"/swagger-ui-dist-*.tgz)
integrity="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
tar -xzf "$tgz" -C "$tmp"

# embedded name -> name in the package
declare -A files=(
	[swagger-ui-bundle.js]=swagger-ui-bundle.js
	[swagger-ui.css]=swagger-ui.css
	[swagger-ui-bundle.js.LICENSE.txt]=swagger-ui-bundle.js.LICENSE.txt
	[swagger-ui-LICENSE]=LICENSE
	[swagger-ui-NOTICE]=NOTICE
)

if [ $# -eq 0 ]; then
	want=$(node -p "require('./$assets/package-lock.json').packages['node_modules/swagger-ui-dist'].integrity")
	[ "$integrity" = "$want" ] || { echo "integrity mismatch: registry $integrity, lock $want" >&2; exit 1; }
	for f in "${!files[@]}"; do
		cmp -s "$assets/docs/$f" "$tmp/package/${files[$f]}" || { echo "$f differs from swagger-ui-dist@$version" >&2; exit 1; }
	done
	echo "swagger-ui-dist@$version: integrity and ${#files[@]} files match"
	exit 0
fi

for f in "${!files[@]}"; do
	cp "$tmp/package/${files[$f]}" "$assets/docs/$f"
done
(cd "$assets" && npm pkg set "dependencies.swagger-ui-dist=$version" &&
	npm install --package-lock-only --ignore-scripts --no-audit --no-fund >/dev/null)
echo "copied swagger-ui-dist@$version ($integrity); now update the table in $assets/README.md:"
(cd "$assets/docs" && sha256sum "${!files[@]}")
