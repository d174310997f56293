package caddymodule

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/scrapegate/scrapegate/rpc"
)

func TestAppCaddyfile(t *testing.T) {
	cases := []struct {
		name  string
		input string
		want  string // JSON of the app
		err   string
	}{
		{name: "bare", input: `scrapegate`, want: `{}`},
		{
			name: "all",
			input: `scrapegate {
				amqp_url {env.AMQP_URL}
				reply_mode direct
				heartbeat_interval 2s
				instance_id gw-1
				connection_name my-gateway
				publish_channels 8
				reply_queue_expires 2m
				accepted_events
			}`,
			want: `{"amqp_url":"{env.AMQP_URL}","reply_mode":"direct","heartbeat_interval":2000000000,"instance_id":"gw-1","connection_name":"my-gateway","publish_channels":8,"reply_queue_expires":120000000000,"accepted_events":true}`,
		},
		{name: "argument", input: `scrapegate amqp://x`, err: "wrong argument count"},
		{name: "unknown", input: "scrapegate {\n url x\n}", err: "unrecognized subdirective: url"},
		{name: "duplicate", input: "scrapegate {\n reply_mode queue\n reply_mode direct\n}", err: "duplicate subdirective: reply_mode"},
		{name: "missing value", input: "scrapegate {\n amqp_url\n}", err: "wrong argument count"},
		{name: "two values", input: "scrapegate {\n instance_id a b\n}", err: "wrong argument count"},
		{name: "flag with value", input: "scrapegate {\n accepted_events yes\n}", err: "wrong argument count"},
		{name: "bad mode", input: "scrapegate {\n reply_mode fast\n}", err: `reply_mode: "fast" is neither queue nor direct`},
		{name: "bad duration", input: "scrapegate {\n heartbeat_interval often\n}", err: `heartbeat_interval: bad duration "often"`},
		{name: "zero duration", input: "scrapegate {\n reply_queue_expires 0s\n}", err: "reply_queue_expires: must be positive"},
		{name: "bad channels", input: "scrapegate {\n publish_channels 0\n}", err: `publish_channels: "0" is not a positive integer`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := parseAppOption(caddyfile.NewTestDispenser(tc.input), nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			app := v.(httpcaddyfile.App)
			if app.Name != AppID || string(app.Value) != tc.want {
				t.Errorf("got %s %s, want %s", app.Name, app.Value, tc.want)
			}
		})
	}
	if _, err := parseAppOption(caddyfile.NewTestDispenser(`scrapegate`), httpcaddyfile.App{}); err == nil {
		t.Error("a second scrapegate option must be an error")
	}
}

// newTestContext returns a Caddy context cancelled at the end of the test.
func newTestContext(t *testing.T) caddy.Context {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}

func TestAppConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		app  App
		err  string
	}{
		{name: "http url", app: App{AMQPURL: "http://user:hunter2@host/"}, err: "amqp_url: must be an amqp:// or amqps:// URL"},
		{name: "no host", app: App{AMQPURL: "amqp://"}, err: "amqp_url"},
		{name: "bad mode", app: App{ReplyMode: "fast"}, err: "reply_mode"},
		{name: "negative heartbeat", app: App{HeartbeatInterval: -1}, err: "heartbeat_interval"},
		{name: "negative channels", app: App{PublishChannels: -1}, err: "publish_channels"},
		{name: "instance with space", app: App{InstanceID: "a b"}, err: "instance_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.app.Provision(newTestContext(t))
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestAppDefaults(t *testing.T) {
	t.Setenv("AMQP_URL", "")
	var a App
	cfg, err := a.clientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL != DefaultAMQPURL || cfg.ReplyMode != rpc.ReplyQueue || cfg.HeartbeatInterval != 5*time.Second || cfg.PublishChannels != 4 {
		t.Errorf("defaults %+v", cfg)
	}
	t.Setenv("AMQP_URL", "amqp://u:p@broker:5672/vh")
	t.Setenv("SCRAPEGATE_TEST_ID", "gw-7")
	a = App{InstanceID: "{env.SCRAPEGATE_TEST_ID}"}
	cfg, err = a.clientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "amqp://u:p@broker:5672/vh" || cfg.InstanceID != "gw-7" {
		t.Errorf("env not used: %+v", cfg)
	}
	if key := linkKey(cfg); strings.Contains(key, ":p@") || !strings.Contains(key, "amqp://u:xxxxx@broker:5672/vh") {
		t.Errorf("key %q must hold the redacted URL only", key)
	}
}

// TestAppSharesLinkAcrossReloads provisions two configs of the same app
// (as a reload does: the new one before the old one is cleaned up) and
// checks that they share one link, closed only with the last of them. No
// broker is needed: nothing dials before Start.
func TestAppSharesLinkAcrossReloads(t *testing.T) {
	url := "amqp://guest:guest@192.0.2.1:5672/unit-" + t.Name()
	start := time.Now()
	a1 := &App{AMQPURL: url, InstanceID: "unit"}
	if err := a1.Provision(newTestContext(t)); err != nil {
		t.Fatal(err)
	}
	a2 := &App{AMQPURL: url, InstanceID: "unit"}
	if err := a2.Provision(newTestContext(t)); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("provisioning took %v: it must not dial", time.Since(start))
	}
	if a1.link != a2.link || a1.Client() != a2.Client() || a1.Stats() != a2.Stats() || !a1.StartedAt().Equal(a2.StartedAt()) {
		t.Fatal("two configs of one link identity must share it")
	}
	if refs, _ := links.References(a1.key); refs != 2 {
		t.Fatalf("references %d, want 2", refs)
	}

	other := &App{AMQPURL: "amqp://guest:other@192.0.2.1:5672/unit-" + t.Name(), InstanceID: "unit"}
	if err := other.Provision(newTestContext(t)); err != nil {
		t.Fatal(err)
	}
	if other.link == a1.link {
		t.Error("a different password must make a different link")
	}
	if err := other.Cleanup(); err != nil {
		t.Fatal(err)
	}

	if err := a1.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if refs, ok := links.References(a2.key); !ok || refs != 1 {
		t.Fatalf("after the old config's cleanup: references %d %v, want 1", refs, ok)
	}
	if err := a2.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, ok := links.References(a2.key); ok {
		t.Fatal("the last cleanup must remove the link")
	}
	if err := a2.Cleanup(); err != nil {
		t.Fatal("a second cleanup must be a no-op")
	}
}

func TestEventBus(t *testing.T) {
	b := newEventBus(nil)
	var n1, n2 atomic.Int32
	un1 := b.subscribe(func(rpc.Event) { n1.Add(1) })
	b.subscribe(func(rpc.Event) { panic("subscriber bug") })
	b.subscribe(func(rpc.Event) { n2.Add(1) })
	b.publish(rpc.Event{Type: rpc.EventStarted})
	un1()
	un1()
	b.publish(rpc.Event{Type: rpc.EventCompleted})
	if n1.Load() != 1 || n2.Load() != 2 {
		t.Errorf("deliveries %d %d, want 1 2", n1.Load(), n2.Load())
	}
	if len(*b.subs.Load()) != 2 {
		t.Errorf("%d subscribers left, want 2", len(*b.subs.Load()))
	}
}

func TestAppJSONRoundTrip(t *testing.T) {
	// the Caddyfile's output must provision: the field names match
	in := `{"amqp_url":"amqp://a@h/","reply_mode":"queue","heartbeat_interval":1000000000,"publish_channels":2}`
	var a App
	if err := json.Unmarshal([]byte(in), &a); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(&a)
	if string(out) != in {
		t.Errorf("round trip %s", out)
	}
}
