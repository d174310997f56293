// Command scrapegate-worker takes scraping tasks from RabbitMQ, runs the
// named script (a built-in or one from the scripts directory) and replies.
// Every flag has an environment variable; -h lists them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "scrapegate-worker:", err)
		os.Exit(1)
	}
}
