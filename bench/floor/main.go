// Command floor is the least a Go gateway can do for POST /scrape, for
// measuring the cost of what scrapegate adds: Go's net/http server, the body
// checked to be JSON and scanned for script_name, parameters and timeout, one
// rpc.Client.Call, and the reply's request_id, status and data written back.
// No Caddy, no authentication, no rate limits, no log line, no error catalogue.
//
// It is a benchmark reference, not a gateway: bench/gateway.sh runs it in place
// of the gateway with TARGET=floor, beside the raw RPC loop and the Node peer.
//
//	go build -o bin/floor ./bench/floor
//	bin/floor -listen :18080 -amqp amqp://guest:guest@127.0.0.1:5672/
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/scrapegate/scrapegate/internal/jsonraw"
	"github.com/scrapegate/scrapegate/rpc"
)

func main() {
	listen := flag.String("listen", ":18080", "address to listen on")
	url := flag.String("amqp", "amqp://guest:guest@127.0.0.1:5672/", "broker URL")
	replyMode := flag.String("reply-mode", "queue", "queue or direct")
	flag.Parse()

	mode := rpc.ReplyQueue
	if *replyMode == "direct" {
		mode = rpc.ReplyDirect
	}
	c, err := rpc.NewClient(rpc.ClientConfig{URL: *url, ReplyMode: mode, Logger: zap.NewNop()})
	if err != nil {
		log.Fatalf("floor: %v", err)
	}
	c.Start()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("POST /scrape", func(w http.ResponseWriter, r *http.Request) { scrape(c, w, r) })
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Printf("floor: %v", err)
	}
	if err := c.Close(); err != nil {
		log.Printf("floor: closing the broker link: %v", err)
	}
}

// caller is what scrape needs of rpc.Client.
type caller interface {
	Call(ctx context.Context, t rpc.Task) (rpc.Reply, error)
}

// scrape answers one POST /scrape.
func scrape(c caller, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "reading body", http.StatusBadRequest)
		return
	}
	var t rpc.Task
	ok := json.Valid(body) && jsonraw.ScanObject(body, func(key, raw []byte) {
		switch string(key) {
		case "script_name":
			t.ScriptName, _ = jsonraw.String(raw)
		case "parameters":
			t.Parameters = raw
		case "timeout":
			t.Timeout, _ = strconv.Atoi(string(raw))
		}
	})
	if !ok || t.ScriptName == "" || t.Timeout <= 0 {
		http.Error(w, "bad body", http.StatusUnprocessableEntity)
		return
	}
	t.RequestID, t.ClientID, t.CreatedAt = uuid.NewString(), "floor", time.Now()
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(t.Timeout)*time.Second)
	defer cancel()
	rep, err := c.Call(ctx, t)
	if err != nil && !errors.As(err, new(*rpc.TaskError)) {
		http.Error(w, "call failed", http.StatusServiceUnavailable)
		return
	}
	out := make([]byte, 0, 128+len(rep.Data))
	out = append(out, `{"request_id":`...)
	out = jsonraw.AppendString(out, t.RequestID)
	out = append(out, `,"status":`...)
	out = jsonraw.AppendString(out, string(rep.Status))
	out = append(out, `,"data":`...)
	if len(rep.Data) == 0 {
		out = append(out, "null"...)
	} else {
		out = jsonraw.AppendCompact(out, rep.Data)
	}
	out = append(out, '}')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
}
