package worker

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/scrapegate/scrapegate/rpc"
)

// BenchmarkRun measures one task in the runtime, without the broker: the
// built-in echo against external scripts, whose difference is the cost of
// starting a script (process, temp dir, pipes, JSON check).
//
//	go test -run '^$' -bench BenchmarkRun -benchtime 2s ./worker/
func BenchmarkRun(b *testing.B) {
	rt, err := New(Config{ScriptsDir: testScriptsDir, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	for _, tc := range []struct{ name, script, version, params string }{
		{"echo", EchoScript, "", `{"name": "Ada"}`},
		{"external-sh", "greet", "1.10.0", `{"name": "Ada"}`},
		{"external-python3", "greet", "1.0.0", `{"name": "Ada"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			task := rpc.Task{RequestID: "bench", ScriptName: tc.script, Parameters: json.RawMessage(tc.params)}
			if tc.version != "" {
				task.ScriptVersion = &tc.version
			}
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if _, err := rt.Run(ctx, task); err != nil {
					b.Fatal(err)
				}
				cancel()
			}
		})
	}
}
