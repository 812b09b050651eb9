package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/bus"
	"github.com/llmesh/llmesh/bus/bustest"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// Fault-test processes: this test binary re-executed with roleEnv set.
const (
	roleEnv = "LLMESH_TRAINER_TEST_ROLE" // "shard" or "ckpt-writer"
	urlEnv  = "LLMESH_TRAINER_TEST_NATS"
	jobEnv  = "LLMESH_TRAINER_TEST_JOB"
	specEnv = "LLMESH_TRAINER_TEST_SPEC"
	// faultRunsEnv sets how many kill -9 runs TestShardKilled makes (the
	// issue asks for 10; the default suite makes 2).
	faultRunsEnv = "LLMESH_TRAINER_FAULT_RUNS"
)

func runRoleIfReexec() {
	role := os.Getenv(roleEnv)
	if role == "" {
		return
	}
	ctx := context.Background()
	b, err := bus.Connect(ctx, bus.Config{URL: os.Getenv(urlEnv), Name: role})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch role {
	case "shard":
		err = shardProcess(ctx, b)
	case "ckpt-writer":
		err = writerProcess(ctx, b)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func shardProcess(ctx context.Context, b *bus.Bus) error {
	h, err := accel.NewHost(accel.HostConfig{Command: reexec, StartTimeout: 20 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer h.Close()
	s, err := New(Config{Bus: b, Host: h, Heartbeat: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	res, err := s.RunShard(ctx, os.Getenv(jobEnv), []byte(os.Getenv(specEnv)))
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// writerProcess writes checkpoints of 64 KiB to 1 MiB in a loop, from the
// latest step on, until killed.
func writerProcess(ctx context.Context, b *bus.Bus) error {
	st, err := newCkptStore(ctx, b, os.Getenv(jobEnv), 3, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	first := 1
	if _, m, _, err := st.Latest(ctx); err == nil {
		first = m.Step + 1
	}
	for step := first; ; step++ {
		w := make([]byte, 64<<10+rng.IntN(1<<20))
		for i := range w {
			w[i] = byte(rng.Uint32())
		}
		if _, err := st.Save(ctx, Manifest{Step: step, Fingerprint: "writer"}, w); err != nil {
			return err
		}
	}
}

// process is a re-executed role with its own process group (so that
// kill -9 takes its plugin with it).
func startRole(t *testing.T, role, url, job string, spec []byte) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+role, urlEnv+"="+url, jobEnv+"="+job, specEnv+"="+string(spec))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	return cmd, &stdout, &stderr
}

// Killing the checkpoint writer anywhere in its write never leaves an
// unloadable latest checkpoint.
func TestCheckpointWriterKilled(t *testing.T) {
	srv := bustest.NewServer(t)
	b := bustest.Connect(t, srv)
	if err := b.Setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err := newCkptStore(t.Context(), b, "writer", 3, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	steps := map[int]bool{}
	for run := range 20 {
		prev := 0
		if _, m, _, err := st.Latest(t.Context()); err == nil {
			prev = m.Step
		}
		cmd, _, stderr := startRole(t, "ckpt-writer", srv.ClientURL(), "writer", nil)
		// Once this writer has stored a checkpoint, kill it at a random
		// point: it writes without pause, so the kill lands inside some
		// write (weights, manifest or pointer).
		bustest.WaitFor(t, 20*time.Second, func() error {
			p, _, err := st.pointer(t.Context())
			if err != nil {
				return err
			}
			if len(p.Latest) == 0 {
				return fmt.Errorf("no checkpoint yet")
			}
			m, err := st.manifest(t.Context(), p.Latest[0])
			if err != nil {
				return err
			}
			if m.Step <= prev {
				return fmt.Errorf("latest step %d, waiting for a newer one", m.Step)
			}
			return nil
		})
		time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if cmd.ProcessState.Success() {
			t.Fatalf("run %d: writer exited by itself: %s", run, stderr)
		}
		ref, m, w, err := st.Latest(t.Context())
		if err != nil {
			t.Fatalf("run %d: after kill -9 of the writer the latest checkpoint does not load: %v", run, err)
		}
		if hashHex(w) != m.SHA256 || m.Fingerprint != "writer" {
			t.Fatalf("run %d: checkpoint %s: manifest %+v", run, ref, m)
		}
		steps[m.Step] = true
	}
	// The writer continues from the latest step, so the kills landed at
	// many points of many writes.
	t.Logf("20 kills; the latest checkpoint loaded every time (%d distinct latest steps)", len(steps))
	if len(steps) < 20 {
		t.Errorf("only %d distinct latest steps after 20 kills, want 20: each writer stores one before it is killed", len(steps))
	}
}

// A corrupt newest checkpoint (its weights do not hash to the manifest's
// digest) is skipped for the previous one; only keep checkpoints are kept.
func TestCheckpointCorruptUsesPrevious(t *testing.T) {
	b := bustest.New(t)
	st, err := newCkptStore(t.Context(), b, "job1", 2, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	var weights [][]byte
	for step := 1; step <= 3; step++ {
		w := bytes.Repeat([]byte{byte(step)}, 1000+step)
		ref, err := st.Save(t.Context(), Manifest{Step: step}, w)
		if err != nil {
			t.Fatal(err)
		}
		refs, weights = append(refs, ref), append(weights, w)
	}
	p, _, err := st.pointer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{refs[2], refs[1]}; strings.Join(p.Latest, ",") != strings.Join(want, ",") {
		t.Errorf("pointer = %v, want the 2 newest %v", p.Latest, want)
	}
	if _, err := b.StatObject(t.Context(), refs[0]); err == nil {
		t.Errorf("checkpoint %s beyond keep=2 still stored", refs[0])
	}
	// Corrupt the newest weights in place: same object name, other bytes.
	m3, _, err := st.Load(t.Context(), refs[2])
	if err != nil {
		t.Fatal(err)
	}
	obs, err := b.JetStream().ObjectStore(t.Context(), bus.ObjectStoreArtifacts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(t.Context(), m3.Weights, []byte("corrupted weights")); err != nil {
		t.Fatal(err)
	}
	ref, m, w, err := st.Latest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ref != refs[1] || m.Step != 2 || !bytes.Equal(w, weights[1]) {
		t.Errorf("Latest = %s step %d, want the previous checkpoint %s (step 2)", ref, m.Step, refs[1])
	}
	if _, _, err := st.Load(t.Context(), refs[2]); err == nil || !strings.Contains(err.Error(), "weights hash") {
		t.Errorf("Load of the corrupt checkpoint: %v, want a hash mismatch", err)
	}
	// A job never reads another job's checkpoints.
	other, err := newCkptStore(t.Context(), b, "job2", 2, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.Load(t.Context(), refs[1]); err == nil || !strings.Contains(err.Error(), `of job "job1"`) {
		t.Errorf("job2 loading job1's checkpoint: %v", err)
	}
}

// kill -9 of one of 3 shard processes at a random step: the others
// re-form the ring, resume from the last checkpoint and finish within 2%
// of the final loss of an uninterrupted run with the same seed.
func TestShardKilled(t *testing.T) {
	runs := 2
	if v := os.Getenv(faultRunsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive count", faultRunsEnv, v)
		}
		runs = n
	}
	srv := bustest.NewServer(t)
	b := bustest.Connect(t, srv)
	if err := b.Setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, b)
	spec := e.dpSpec(t, 3, func(s map[string]any) {
		s["steps"] = 40
		s["checkpoint_every"] = 5
		s["eval_every"] = 10
		s["collective_timeout_s"] = 2
		s["max_restarts"] = 3
	})
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	// The uninterrupted run, three shards in this process.
	ref, errs := e.runShards(t, "reference", spec, spec, spec)
	for _, err := range errs {
		if err != nil {
			t.Fatalf("reference run: %v", err)
		}
	}
	want := ref[0].FinalLoss
	rng := rand.New(rand.NewPCG(11, 12))
	for run := range runs {
		job := fmt.Sprintf("killed-%d", run)
		killAt := 3 + rng.IntN(30)
		victim := rng.IntN(3)
		ctx, cancel := context.WithCancel(t.Context())
		events, err := b.WatchEvents(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		type proc struct {
			cmd            *exec.Cmd
			stdout, stderr *bytes.Buffer
		}
		procs := make([]proc, 3)
		for i := range procs {
			cmd, out, errb := startRole(t, "shard", srv.ClientURL(), job, js)
			procs[i] = proc{cmd, out, errb}
		}
		var once sync.Once
		killedAt := -1
		var killTime, reformTime time.Time
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			for ev := range events {
				if m, ok := ev.Body.(*busv1.Event_Metric); ok && m.Metric.Name == "loss" && int(m.Metric.Step) >= killAt {
					once.Do(func() {
						killedAt = int(m.Metric.Step)
						killTime = time.Now()
						_ = syscall.Kill(-procs[victim].cmd.Process.Pid, syscall.SIGKILL)
					})
				}
				if l, ok := ev.Body.(*busv1.Event_Log); ok && strings.HasPrefix(l.Log, "generation 2:") && reformTime.IsZero() {
					reformTime = time.Now()
				}
			}
		}()
		var results []Result
		for i, p := range procs {
			err := p.cmd.Wait()
			if i == victim {
				continue
			}
			if err != nil {
				t.Fatalf("run %d: shard %d failed: %v\n%s", run, i, err, p.stderr)
			}
			var r Result
			if err := json.Unmarshal(p.stdout.Bytes(), &r); err != nil {
				t.Fatalf("run %d: shard %d result %q: %v", run, i, p.stdout, err)
			}
			results = append(results, r)
		}
		cancel()
		<-watched
		var lead *Result
		for i := range results {
			if results[i].Rank == 0 {
				lead = &results[i]
			}
		}
		if lead == nil {
			t.Fatalf("run %d: no surviving shard had rank 0: %+v", run, results)
		}
		if procs[victim].cmd.ProcessState.Success() {
			// The victim finished before the kill landed (killAt near the
			// end): nothing was interrupted.
			t.Logf("run %d: shard %d finished before the kill at step %d", run, victim, killAt)
			continue
		}
		if lead.Generations < 2 || len(lead.ResumedAt) == 0 || lead.Shards != 3 {
			t.Errorf("run %d: killed shard %d at step %d; leader's result %+v, want a second generation resumed from a checkpoint", run, victim, killedAt, *lead)
		}
		for _, step := range lead.ResumedAt {
			if step%5 != 0 || step > killedAt {
				t.Errorf("run %d: resumed at step %d, want a checkpoint step (multiple of 5) at or before the kill at %d", run, step, killedAt)
			}
		}
		d := math.Abs(lead.FinalLoss-want) / want
		t.Logf("run %d: killed shard %d at step %d, ring re-formed %.1fs later (collective timeout 2s), resumed at %v, final loss %.5f vs %.5f uninterrupted (%.2g relative)",
			run, victim, killedAt, reformTime.Sub(killTime).Seconds(), lead.ResumedAt, lead.FinalLoss, want, d)
		if d > 0.02 {
			t.Errorf("run %d: final loss %.5f, uninterrupted %.5f: more than 2%% apart", run, lead.FinalLoss, want)
		}
	}
}

// FuzzManifest feeds outside bytes to the checkpoint manifest parser: an
// error or a manifest whose fields are in range, never a panic.
func FuzzManifest(f *testing.F) {
	valid, _ := json.Marshal(Manifest{Version: 1, Job: "j", Step: 5, Weights: "sha256-" + strings.Repeat("a", 64), SHA256: strings.Repeat("b", 64), DataPosition: 5})
	f.Add(valid)
	f.Add([]byte(`{"version":1,"job":"j","step":-1}`))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, js []byte) {
		ref := "sha256-" + hashHex(js)
		m, err := parseManifest(ref, "j", js)
		if err != nil {
			return
		}
		if m.Step < 0 || m.Job != "j" || bus.ValidRef(m.Weights) != nil {
			t.Fatalf("accepted %+v", m)
		}
		if _, err := parseManifest("sha256-"+strings.Repeat("0", 64), "j", js); err == nil {
			t.Fatal("accepted a manifest under another ref")
		}
	})
}
