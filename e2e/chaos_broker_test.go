package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chaosBroker is a RabbitMQ node of the fault suite's own: the same RabbitMQ
// installation as the shared broker on 127.0.0.1:5672, started as a second
// node (its own name, port, data and log directories) for the duration of
// TestChaos. The suite restarts its broker (stop_app/start_app) and closes
// all its connections; on the shared broker that would break every test of
// the other packages that `go test ./...` runs at the same time, so the
// suite breaks a broker no one else uses.
type chaosBroker struct {
	// Node is the Erlang node name, for `rabbitmqctl -n`.
	Node string
	// Port is the AMQP port on 127.0.0.1.
	Port int
	// VHost is the vhost the suite runs in.
	VHost string
	// URL is the AMQP URL of VHost.
	URL string
	dir string
}

// startChaosBroker starts a private RabbitMQ node with a vhost for the test
// and stops it (deleting its data) when the test ends.
func startChaosBroker(t *testing.T) *chaosBroker {
	t.Helper()
	b := &chaosBroker{
		Node:  "sgchaos-" + randHex(4) + "@localhost",
		Port:  FreePort(t),
		VHost: "scrapegate-chaos",
	}
	b.URL = fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/%s", b.Port, b.VHost)
	stopStaleChaosBrokers(t)
	dir, err := os.MkdirTemp("", chaosBrokerDirPrefix)
	if err != nil {
		t.Fatalf("creating broker dir: %v", err)
	}
	b.dir = dir
	conf := fmt.Sprintf("listeners.tcp.local = 127.0.0.1:%d\n", b.Port)
	files := map[string]string{
		"rabbitmq.conf":   conf,
		"enabled_plugins": "[].\n",
		// for stopStaleChaosBrokers
		"owner": strconv.Itoa(os.Getpid()),
		"node":  b.Node,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatalf("writing %s: %v", name, err)
		}
	}
	// rabbitmq-server run by root switches to the rabbitmq user, which must
	// own the node's directories.
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("rabbitmq"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			_ = filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Chown(p, uid, gid) })
		}
	}
	cmd := exec.Command("rabbitmq-server", "-detached")
	cmd.Env = append(os.Environ(),
		"RABBITMQ_NODENAME="+b.Node,
		"RABBITMQ_NODE_PORT="+strconv.Itoa(b.Port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(FreePort(t)),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"),
	)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("starting RabbitMQ node %s: %v\n%s", b.Node, err, out)
	}
	t.Cleanup(b.stop)
	if err := b.awaitStartup(90 * time.Second); err != nil {
		t.Fatalf("RabbitMQ node %s: %v\n%s", b.Node, err, b.logTail())
	}
	for _, args := range [][]string{
		{"add_vhost", b.VHost},
		{"set_permissions", "-p", b.VHost, "guest", ".*", ".*", ".*"},
	} {
		if _, err := b.ctl(args...); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// chaosBrokerDirPrefix names the directories of the suite's broker nodes
// under os.TempDir().
const chaosBrokerDirPrefix = "scrapegate-chaos-rmq-"

// stopStaleChaosBrokers stops the nodes of earlier runs whose test process
// is gone (killed before its cleanup ran) and removes their directories.
func stopStaleChaosBrokers(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), chaosBrokerDirPrefix+"*"))
	for _, dir := range dirs {
		owner, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(owner)))
		if err != nil || syscall.Kill(pid, 0) == nil {
			continue // its test still runs
		}
		node, err := os.ReadFile(filepath.Join(dir, "node"))
		if err != nil {
			continue
		}
		t.Logf("stopping the broker node %s of an earlier run (process %d is gone)", node, pid)
		stale := &chaosBroker{Node: strings.TrimSpace(string(node)), dir: dir}
		stale.stop()
	}
}

// ctl runs `rabbitmqctl -n <node> -q args...` (at most 90 s).
func (b *chaosBroker) ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-n", b.Node, "-q"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// awaitStartup waits until the node's RabbitMQ application runs.
func (b *chaosBroker) awaitStartup(within time.Duration) error {
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		if _, err = b.ctl("await_startup", "--timeout", "10"); err == nil {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("not started within %v: %w", within, err)
}

// StopApp stops the RabbitMQ application (the Erlang node stays up): every
// connection drops and the port stops answering.
func (b *chaosBroker) StopApp() error {
	_, err := b.ctl("stop_app")
	return err
}

// StartApp starts the RabbitMQ application again; it returns once the
// application runs (start_app is synchronous).
func (b *chaosBroker) StartApp() error {
	_, err := b.ctl("start_app")
	return err
}

// CloseAllConnections closes every connection of the suite's vhost.
func (b *chaosBroker) CloseAllConnections() error {
	_, err := b.ctl("close_all_connections", "--vhost", b.VHost, "scrapegate chaos suite")
	return err
}

// stop stops the node and removes its data.
func (b *chaosBroker) stop() {
	if _, err := b.ctl("stop"); err != nil {
		// kill the node's Erlang VM, if that pid still is it
		if raw, rerr := os.ReadFile(filepath.Join(b.dir, "pid")); rerr == nil {
			pid := strings.TrimSpace(string(raw))
			cmdline, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
			if n, perr := strconv.Atoi(pid); perr == nil && strings.Contains(string(cmdline), b.Node) {
				_ = syscall.Kill(n, syscall.SIGKILL)
			}
		}
	}
	os.RemoveAll(b.dir)
}

// logTail returns the end of the node's log, for failures.
func (b *chaosBroker) logTail() string {
	matches, _ := filepath.Glob(filepath.Join(b.dir, "log", "*.log"))
	var sb strings.Builder
	for _, m := range matches {
		raw, _ := os.ReadFile(m)
		sb.WriteString(tail(string(raw), 40))
	}
	return sb.String()
}

// brokerConn is one connection of the suite's vhost as the broker lists it.
type brokerConn struct {
	// PID is the broker's id of the connection; it changes on reconnect.
	PID string
	// Name is the client's connection_name.
	Name string
	// Channels is the number of channels open on it.
	Channels int
}

// Connections lists the connections of the suite's vhost, with the number
// of channels of each from `list_channels`.
func (b *chaosBroker) Connections() ([]brokerConn, error) {
	out, err := b.ctl("list_connections", "pid", "vhost", "client_properties", "--formatter", "json")
	if err != nil {
		return nil, err
	}
	var rows []struct {
		PID              string  `json:"pid"`
		VHost            string  `json:"vhost"`
		ClientProperties [][]any `json:"client_properties"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		return nil, fmt.Errorf("parsing list_connections: %v: %s", err, out)
	}
	out, err = b.ctl("list_channels", "connection", "vhost", "--formatter", "json")
	if err != nil {
		return nil, err
	}
	var chans []struct {
		Connection string `json:"connection"`
		VHost      string `json:"vhost"`
	}
	if err := json.Unmarshal([]byte(out), &chans); err != nil {
		return nil, fmt.Errorf("parsing list_channels: %v: %s", err, out)
	}
	perConn := make(map[string]int)
	for _, c := range chans {
		if c.VHost == b.VHost {
			perConn[c.Connection]++
		}
	}
	var conns []brokerConn
	for _, r := range rows {
		if r.VHost != b.VHost {
			continue
		}
		c := brokerConn{PID: r.PID, Channels: perConn[r.PID]}
		for _, p := range r.ClientProperties {
			if len(p) == 3 && p[0] == "connection_name" {
				c.Name, _ = p[2].(string)
			}
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// brokerQueue is one queue of the suite's vhost.
type brokerQueue struct {
	Name      string `json:"name"`
	Messages  int    `json:"messages"`
	Consumers int    `json:"consumers"`
}

// Queues lists the queues of the suite's vhost.
func (b *chaosBroker) Queues() ([]brokerQueue, error) {
	out, err := b.ctl("list_queues", "-p", b.VHost, "name", "messages", "consumers", "--formatter", "json")
	if err != nil {
		return nil, err
	}
	var qs []brokerQueue
	if err := json.Unmarshal([]byte(out), &qs); err != nil {
		return nil, fmt.Errorf("parsing list_queues: %v: %s", err, out)
	}
	return qs, nil
}
