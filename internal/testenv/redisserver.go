package testenv

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a real six-node Redis Cluster on loopback (three masters,
// three replicas), from Debian's redis-server, stopped when the test ends.
// Nodes fail over after NodeTimeout without a master's answer.
type RedisCluster struct {
	t     testing.TB
	Nodes []*RedisNode
}

// RedisNode is one private redis-server: alone (StartRedis) or in a
// RedisCluster.
type RedisNode struct {
	Addr string // 127.0.0.1:port
	args []string
	cmd  *exec.Cmd
}

// NodeTimeout is the clusters' cluster-node-timeout: shorter than Redis's
// 15 s default so failovers fit in a test.
const NodeTimeout = 3 * time.Second

// StartRedisCluster starts six nodes on free loopback ports, joins them with
// `redis-cli --cluster create … --cluster-replicas 1` and waits until every
// node sees a healthy cluster and every replica is in sync.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed: make services installs it", bin)
		}
	}
	c := &RedisCluster{t: t}
	dir := t.TempDir()
	for i := range 6 {
		// The bus port is set, not left at port+10000: a free port may be above 55535.
		port, bus := FreePort(t), FreePort(t)
		n := &RedisNode{Addr: fmt.Sprintf("127.0.0.1:%d", port), args: []string{
			"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--cluster-port", strconv.Itoa(bus), "--dir", dir,
			"--cluster-enabled", "yes", "--cluster-config-file", fmt.Sprintf("nodes-%d.conf", i),
			"--cluster-node-timeout", strconv.Itoa(int(NodeTimeout / time.Millisecond)),
			"--appendonly", "yes", "--appendfilename", fmt.Sprintf("node-%d.aof", i), "--appenddirname", fmt.Sprintf("aof-%d", i),
			"--save", "", "--logfile", filepath.Join(dir, fmt.Sprintf("node-%d.log", i))}}
		c.Nodes = append(c.Nodes, n)
		n.Start(t)
		t.Cleanup(n.Kill)
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		args = append(args, n.Addr)
	}
	if out, err := exec.Command("redis-cli", append(args, "--cluster-replicas", "1", "--cluster-yes")...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy(30 * time.Second)
	return c
}

// StartRedis starts one private redis-server with the append-only file on
// (appendfsync everysec, as scripts/services.sh runs it) on a free loopback
// port, killed when the test ends: for tests that kill, pause or restart it.
func StartRedis(t testing.TB) *RedisNode {
	t.Helper()
	dir, port := t.TempDir(), FreePort(t)
	n := &RedisNode{Addr: fmt.Sprintf("127.0.0.1:%d", port), args: []string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--appendonly", "yes", "--save", "", "--logfile", filepath.Join(dir, "redis.log")}}
	n.Start(t)
	t.Cleanup(n.Kill)
	return n
}

// URL is REDIS_URL for a lone node.
func (n *RedisNode) URL() string { return "redis://" + n.Addr + "/0" }

// Pause stops the node with SIGSTOP: it keeps its connections but answers
// nothing, as a hung server would. Resume continues it.
func (n *RedisNode) Pause()  { n.cmd.Process.Signal(syscall.SIGSTOP) }
func (n *RedisNode) Resume() { n.cmd.Process.Signal(syscall.SIGCONT) }

// URL is REDIS_URL's cluster form for the cluster.
func (c *RedisCluster) URL() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return "redis://" + strings.Join(addrs, ",")
}

// Start starts the node (again: a restarted node rejoins from its
// nodes.conf and append-only file) and waits for it to answer PING.
func (n *RedisNode) Start(t testing.TB) {
	t.Helper()
	n.cmd = exec.Command("redis-server", n.args...)
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("redis-server: %v (make services installs it)", err)
	}
	for deadline := time.Now().Add(10 * time.Second); n.Info("PING") != "PONG"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("redis node %s did not start", n.Addr)
		}
	}
}

// Kill kills the node with SIGKILL (what its append-only file has not
// written yet is lost) and waits for it to end.
func (n *RedisNode) Kill() {
	if n.cmd != nil && n.cmd.Process != nil {
		n.cmd.Process.Kill()
		n.cmd.Wait()
		n.cmd = nil
	}
}

// Client is a plain client of this node alone (no cluster redirects).
func (n *RedisNode) Client() *redis.Client { return redis.NewClient(&redis.Options{Addr: n.Addr}) }

// Info runs one command on the node and returns its reply as text ("" on error).
func (n *RedisNode) Info(args ...any) string {
	rdb := n.Client()
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := rdb.Do(ctx, args...).Text()
	if err != nil {
		return ""
	}
	return v
}

// IsMaster reports whether the node answers and is a master now.
func (n *RedisNode) IsMaster() bool {
	return strings.Contains(n.Info("INFO", "replication"), "role:master")
}

// MasterOf returns the node that serves key's slot as master now, as the
// first live node that answers sees it.
func (c *RedisCluster) MasterOf(key string) *RedisNode {
	c.t.Helper()
	ctx := context.Background()
	for _, n := range c.Nodes {
		rdb := n.Client()
		slot, err := rdb.ClusterKeySlot(ctx, key).Result()
		var slots []redis.ClusterSlot
		if err == nil {
			slots, err = rdb.ClusterSlots(ctx).Result()
		}
		rdb.Close()
		if err != nil {
			continue
		}
		for _, s := range slots {
			if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
				for _, m := range c.Nodes {
					if m.Addr == s.Nodes[0].Addr {
						return m
					}
				}
			}
		}
	}
	c.t.Fatalf("no master serves the slot of %q", key)
	return nil
}

// WaitHealthy waits until every running node sees all six nodes and
// cluster_state:ok, and every replica's link to its master is up.
func (c *RedisCluster) WaitHealthy(limit time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(limit)
	for _, n := range c.Nodes {
		for {
			info, repl := n.Info("CLUSTER", "INFO"), n.Info("INFO", "replication")
			if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:6") &&
				(strings.Contains(repl, "role:master") || strings.Contains(repl, "master_link_status:up")) {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("redis node %s did not settle within %s:\n%s\n%s", n.Addr, limit, info, repl)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
