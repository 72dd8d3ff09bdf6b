package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/biomatch/biomatch/internal/testenv"
)

// The fault tests stop and kill PostgreSQL and Redis, so they run private
// instances (the shared ones serve the other packages' tests meanwhile),
// from the same binaries scripts/services.sh installs.
const pgBin = "/usr/lib/postgresql/15/bin"

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// postgresServer is a private PostgreSQL cluster with pgvector, run as the
// postgres user (PostgreSQL refuses root) on a loopback port.
type postgresServer struct {
	t    *testing.T
	dir  string
	port int
}

func startPostgres(t *testing.T) *postgresServer {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("the fault tests run PostgreSQL as the postgres user: %v (run make services first)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	root, err := os.MkdirTemp("", "biomatch-chaos-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &postgresServer{t: t, dir: filepath.Join(root, "data"), port: testenv.FreePort(t)}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p.dir, uid, gid); err != nil {
		t.Fatalf("chown %s to postgres (the fault tests need root): %v", p.dir, err)
	}
	t.Cleanup(func() {
		exec.Command("runuser", "-u", "postgres", "--", pgBin+"/pg_ctl", "-D", p.dir, "-m", "immediate", "stop").Run()
		os.RemoveAll(root)
	})
	run(t, "runuser", "-u", "postgres", "--", pgBin+"/initdb", "-D", p.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
	p.start()

	ctx := context.Background()
	admin, err := pgx.Connect(ctx, p.url("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE biomatch"); err != nil {
		t.Fatal(err)
	}
	db, err := pgx.Connect(ctx, p.url("biomatch"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, "CREATE EXTENSION vector"); err != nil {
		t.Fatalf("pgvector: %v (make services installs it)", err)
	}
	return p
}

func (p *postgresServer) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

func (p *postgresServer) start() {
	p.t.Helper()
	run(p.t, "runuser", "-u", "postgres", "--", pgBin+"/pg_ctl", "-D", p.dir, "-l", p.dir+"/server.log", "-w", "-t", "60",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=100", p.port, p.dir), "start")
}

// stop is a clean, fast shutdown: connections are cut, the data stays.
func (p *postgresServer) stop() {
	p.t.Helper()
	run(p.t, "runuser", "-u", "postgres", "--", pgBin+"/pg_ctl", "-D", p.dir, "-m", "fast", "-w", "stop")
}
