// Package worker is the script runtime of scrapegate-worker: it runs the
// scripts that tasks name, built-in or external, under the task's deadline,
// and implements rpc.Handler so an rpc.Server can serve it.
//
// Built-in scripts (Go, always present, version 1.0.0):
//
//   - echo: data is the parameters; a numeric sleep_ms waits first.
//   - http_fetch: fetches a URL (GET, or POST with a body) and returns the
//     final URL, status, headers and body, with limits on the body size,
//     redirects and time.
//   - html_extract: fetches a URL (or takes html inline) and returns the
//     fields named by a map of CSS selectors.
//
// The built-ins connect only through a checked dialer: an address that is
// loopback, private, link-local, multicast or otherwise not public is refused
// at connect time, on the resolved address, unless Config.AllowNetworks holds
// it (see AddressPolicy).
//
// External scripts live in a scripts directory, one directory per name and
// version, <dir>/<name>/<version>/manifest.json (see Manifest). Each task runs
// the script as a child process in its own process group and temporary
// working directory with a minimal environment: the parameters are its stdin,
// its stdout is the JSON result, the tail of its stderr explains a failure.
// At the deadline, or when the task is cancelled, the whole process group is
// killed. Runtime.Rescan and Runtime.Watch pick up new scripts and versions
// without a restart.
//
// Every failure is an *rpc.TaskError carrying one of the wire contract's codes:
// UNKNOWN_VERSION, INVALID_PARAMETERS, SCRIPT_ERROR, SCRIPT_TIMEOUT,
// OUTPUT_TOO_LARGE or CANCELLED.
package worker
