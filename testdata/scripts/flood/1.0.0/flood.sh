#!/bin/sh
# flood: an endless stream on stdout; the worker's output limit must stop it.
exec yes '"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"'
