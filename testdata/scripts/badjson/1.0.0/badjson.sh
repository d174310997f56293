#!/bin/sh
# badjson: exits 0 with a stdout that is not JSON.
cat >/dev/null
echo 'price: {12.50'
