// Command loadgen drives a running biomatch at a constant rate with an
// open-loop schedule: request i starts at start + i/rate whether or not
// earlier ones finished, and its latency is measured from that scheduled
// time, so a slow server cannot hide queueing (no coordinated omission). It
// prints p50/p90/p99/max and errors by status per operation, and with
// -check verifies its history against PostgreSQL: every enroll answered
// "Ok" exists exactly once, every enroll answered 202 completed with a
// person. It stops by itself after -duration.
//
// Requests are encoded and encrypted before the clock starts (identify
// probes from a pool of up to 16,384, enrolls each a new face), so the
// load generator spends the run on HTTP alone, and it keeps up to -conns
// connections alive, as an ingress in front of biomatch would.
//
//	go run ./bench/loadgen -key KEY -gallery 10000 -gallery-seed 7 -rate 1 -duration 1s    # make the gallery once
//	go run ./bench/loadgen -key KEY -gallery 10000 -gallery-seed 7 -enroll-gallery=false -enroll 0.1 -rate 200 -duration 60s -check
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/biomatch/biomatch/client"
	"github.com/biomatch/biomatch/internal/synth"
)

type sample struct {
	op      string
	latency time.Duration
	status  string // HTTP status, or "error"
	puid    string // enroll replies
	created bool
	queued  string // a 202's enroll request id
	second  int    // the second of the run it was due in
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8000", "server")
	key := flag.String("key", "", "API key (biomatch apikey create --customer loadgen)")
	version := flag.String("version", "FACE3_1", "gallery version")
	rate := flag.Float64("rate", 50, "requests per second, all operations")
	duration := flag.Duration("duration", 30*time.Second, "how long to send")
	enrollShare := flag.Float64("enroll", 0.2, "share of enrolls; the rest identify")
	gallery := flag.Int("gallery", 0, "identify probes come from a gallery of this many persons")
	gallerySeed := flag.Uint64("gallery-seed", 1, "identity seed of the gallery")
	enrollGallery := flag.Bool("enroll-gallery", true, "enroll the gallery first (not measured); false: it exists from an earlier run with the same -gallery-seed")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "identity seed of the new persons this run enrolls")
	check := flag.Bool("check", false, "verify the enroll history against PostgreSQL (DATABASE_URL or ./.data/env)")
	asJSON := flag.Bool("json", false, "print the summary as JSON")
	timeline := flag.Bool("timeline", false, "also print each second's p50/p99 by operation (warm-up, stalls)")
	conns := flag.Int("conns", 512, "keep-alive connections to the server at most (0: a new connection per request)")
	flag.Parse()
	if *key == "" || *rate <= 0 {
		fmt.Fprintln(os.Stderr, "loadgen: -key and a positive -rate are required")
		os.Exit(2)
	}
	// A request (~13 KB) goes out in one write: with the default 4 KB
	// buffer it took two system calls and two TCP segments, and on one
	// machine the generator's sends are the server's cost too.
	transport := &http.Transport{MaxIdleConns: *conns, MaxIdleConnsPerHost: *conns, DisableKeepAlives: *conns == 0,
		WriteBufferSize: 64 << 10}
	c := &client.Client{BaseURL: *url, APIKey: *key, Version: *version, Enc: 2,
		HTTP: &http.Client{Timeout: 60 * time.Second, Transport: transport}}
	ctx := context.Background()
	base, galleryBase := *seed<<20, *gallerySeed<<40

	if *gallery > 0 && *enrollGallery {
		fmt.Fprintf(os.Stderr, "loadgen: enrolling a gallery of %d…\n", *gallery)
		var wg sync.WaitGroup
		next := make(chan int)
		for range 8 {
			wg.Go(func() {
				for i := range next {
					c.Enroll(ctx, synth.Vector(512, galleryBase+uint64(i), 0, 0), "")
				}
			})
		}
		for i := range *gallery {
			next <- i
		}
		close(next)
		wg.Wait()
	}

	n := int(*rate * duration.Seconds())
	interval := time.Duration(float64(time.Second) / *rate)
	reqs, err := prepare(c, n, *enrollShare, *seed, base, galleryBase, max(*gallery, 1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	samples := make([]sample, n)
	start := time.Now()
	var wg sync.WaitGroup
	for i, req := range reqs {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		wg.Go(func() {
			s := sample{op: "identify", second: int(due.Sub(start) / time.Second)}
			if req.enroll {
				s.op = "enroll"
			}
			rep, err := c.Send(ctx, req.Prepared)
			s.latency = time.Since(due)
			if err != nil {
				s.status = "error"
			} else {
				s.status = fmt.Sprint(rep.HTTPStatus)
				s.puid, s.created = rep.PUID, req.enroll && rep.HTTPStatus == 200 && rep.Message == "Ok"
				if req.enroll && rep.HTTPStatus == 202 {
					s.queued = rep.Header["x-enroll-request-id"]
				}
			}
			samples[i] = s
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	summary := summarize(samples, elapsed, *rate)
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(summary)
	} else {
		printSummary(summary)
	}
	if *timeline {
		printTimeline(samples)
	}
	if *check {
		if err := verify(ctx, samples); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: history check FAILED:", err)
			os.Exit(1)
		}
		fmt.Println("history check: every acknowledged enroll exists exactly once")
	}
}

// request is one scheduled request, encoded and encrypted.
type request struct {
	client.Prepared
	enroll bool
}

// probePool is how many distinct identify probes a run prepares at most;
// later identifies reuse them in turn.
const probePool = 16384

// prepare draws the run's n requests (a share of enrolls, each a new face;
// the rest identifies of known faces) and encodes them on every core.
func prepare(c *client.Client, n int, enrollShare float64, seed, base, galleryBase uint64, known int) ([]request, error) {
	began := time.Now()
	r := rand.New(rand.NewPCG(seed, 1))
	reqs := make([]request, n)
	build := make([]func() (client.Prepared, error), n)
	var fresh uint64
	var pool []int // request index of each distinct identify probe
	for i := range reqs {
		if reqs[i].enroll = r.Float64() < enrollShare; reqs[i].enroll {
			id := base + fresh
			fresh++
			build[i] = func() (client.Prepared, error) { return c.PrepareEnroll(synth.Vector(512, id, 0, 0), "") }
			continue
		}
		if len(pool) == probePool {
			continue // filled from the pool below
		}
		id, sample := galleryBase+uint64(r.IntN(known)), uint64(i)
		build[i] = func() (client.Prepared, error) { return c.PreparePredict(synth.Vector(512, id, 0.3, sample), 1, "") }
		pool = append(pool, i)
	}
	next := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				p, err := build[i]()
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				reqs[i].Prepared = p
			}
		})
	}
	for i := range build {
		if build[i] != nil {
			next <- i
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	used := 0
	for i := range reqs {
		if !reqs[i].enroll && build[i] == nil {
			reqs[i].Prepared = reqs[pool[used%len(pool)]].Prepared
			used++
		}
	}
	fmt.Fprintf(os.Stderr, "loadgen: %d requests (%d enrolls, %d distinct identify probes) prepared in %.1fs\n",
		n, fresh, len(pool), time.Since(began).Seconds())
	return reqs, nil
}

// OpStats is one operation's figures.
type OpStats struct {
	Count    int            `json:"count"`
	P50ms    float64        `json:"p50_ms"`
	P90ms    float64        `json:"p90_ms"`
	P99ms    float64        `json:"p99_ms"`
	MaxMs    float64        `json:"max_ms"`
	ByStatus map[string]int `json:"by_status"`
}

// Summary is the run's result.
type Summary struct {
	TargetRate   float64             `json:"target_rate"`
	AchievedRate float64             `json:"achieved_rate"`
	Seconds      float64             `json:"seconds"`
	Ops          map[string]*OpStats `json:"ops"`
}

func summarize(samples []sample, elapsed time.Duration, rate float64) Summary {
	s := Summary{TargetRate: rate, AchievedRate: float64(len(samples)) / elapsed.Seconds(), Seconds: elapsed.Seconds(), Ops: map[string]*OpStats{}}
	lat := map[string][]float64{}
	for _, x := range samples {
		st := s.Ops[x.op]
		if st == nil {
			st = &OpStats{ByStatus: map[string]int{}}
			s.Ops[x.op] = st
		}
		st.Count++
		st.ByStatus[x.status]++
		lat[x.op] = append(lat[x.op], float64(x.latency.Microseconds())/1000)
	}
	for op, l := range lat {
		slices.Sort(l)
		q := func(p float64) float64 { return l[min(len(l)-1, int(p*float64(len(l))))] }
		st := s.Ops[op]
		st.P50ms, st.P90ms, st.P99ms, st.MaxMs = q(0.5), q(0.9), q(0.99), l[len(l)-1]
	}
	return s
}

func printSummary(s Summary) {
	fmt.Printf("target %.0f/s, achieved %.1f/s over %.1fs\n", s.TargetRate, s.AchievedRate, s.Seconds)
	fmt.Println("| op | count | p50 ms | p90 ms | p99 ms | max ms | by status |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, op := range []string{"enroll", "identify"} {
		if st := s.Ops[op]; st != nil {
			fmt.Printf("| %s | %d | %.1f | %.1f | %.1f | %.1f | %v |\n", op, st.Count, st.P50ms, st.P90ms, st.P99ms, st.MaxMs, st.ByStatus)
		}
	}
}

// printTimeline prints each second's latencies by operation, by when
// the requests were due: a slow start or a stall shows as its seconds.
func printTimeline(samples []sample) {
	bySecond := map[int][]sample{}
	last := 0
	for _, x := range samples {
		bySecond[x.second] = append(bySecond[x.second], x)
		last = max(last, x.second)
	}
	fmt.Println("| second | op | count | p50 ms | p99 ms | max ms |")
	fmt.Println("|---|---|---|---|---|---|")
	for sec := 0; sec <= last; sec++ {
		s := summarize(bySecond[sec], time.Second, 0)
		for _, op := range []string{"enroll", "identify"} {
			if st := s.Ops[op]; st != nil {
				fmt.Printf("| %d | %s | %d | %.1f | %.1f | %.1f |\n", sec, op, st.Count, st.P50ms, st.P99ms, st.MaxMs)
			}
		}
	}
}

// verify checks every enroll acknowledged as a new person against
// PostgreSQL — its puid exists, once — and waits (up to 5 minutes) for
// every enroll answered 202 to complete with a person.
func verify(ctx context.Context, samples []sample) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		f, err := os.Open(".data/env")
		if err != nil {
			return fmt.Errorf("DATABASE_URL is not set and .data/env is missing")
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "export DATABASE_URL="); ok {
				url = v
			}
		}
		f.Close()
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var puids []string
	for _, s := range samples {
		if s.created {
			puids = append(puids, s.puid)
		}
	}
	counts := map[string]int{}
	rows, err := conn.Query(ctx, `SELECT puid, count(*) FROM persons WHERE puid = ANY($1) GROUP BY puid`, puids)
	if err != nil {
		return err
	}
	var p string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&p, &n}, func() error { counts[p] = n; return nil }); err != nil {
		return err
	}
	for _, id := range puids {
		if counts[id] != 1 {
			return fmt.Errorf("acknowledged enroll %s exists %d times", id, counts[id])
		}
	}
	fmt.Printf("history: %d acknowledged new persons, all present once\n", len(puids))

	var queued []string
	for _, s := range samples {
		if s.queued != "" {
			queued = append(queued, s.queued)
		}
	}
	if len(queued) == 0 {
		return nil
	}
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(time.Second) {
		var waiting, withPerson int
		err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'done' AND person_id IS NOT NULL)
			FROM enroll_requests WHERE id = ANY($1)`, queued).Scan(&waiting, &withPerson)
		if err != nil {
			return err
		}
		if waiting == 0 {
			if withPerson != len(queued) {
				return fmt.Errorf("%d enrolls answered 202, %d completed with a person", len(queued), withPerson)
			}
			fmt.Printf("history: %d enrolls answered 202 (queued), all completed with a person\n", len(queued))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d enrolls answered 202 still pending after 5 minutes", waiting, len(queued))
		}
	}
}
