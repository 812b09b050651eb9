package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
	"unicode"

	"google.golang.org/protobuf/proto"

	"github.com/llmesh/llmesh/bus"
	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
	"github.com/llmesh/llmesh/services/filter"
)

// learnSet makes labelled sentences whose label is carried by the verb
// alone, in English and Chinese: a category a phrase list would need every
// combination for, and a classifier learns from the verb.
func learnSet(r *rand.Rand, n int, subjects, objects []string) []filter.Example {
	harmEN := []string{"poison", "stab", "kidnap", "rob", "burn down"}
	okEN := []string{"visit", "thank", "call", "help", "paint"}
	harmZH := []string{"毒害", "绑架", "抢劫", "刺伤", "烧毁"}
	okZH := []string{"拜访", "感谢", "帮助", "问候", "粉刷"}
	zhSubj := []string{"我", "他", "她", "我们", "邻居", "那个人"}
	zhObj := []string{"老板", "邻居", "老师", "房东", "同事", "商店"}
	var out []filter.Example
	for i := range n {
		block := i%2 == 0
		var text string
		if r.IntN(2) == 0 {
			verbs := okEN
			if block {
				verbs = harmEN
			}
			text = fmt.Sprintf("%s will %s %s", subjects[r.IntN(len(subjects))], verbs[r.IntN(len(verbs))], objects[r.IntN(len(objects))])
		} else {
			verbs := okZH
			if block {
				verbs = harmZH
			}
			text = fmt.Sprintf("%s要%s%s", zhSubj[r.IntN(len(zhSubj))], verbs[r.IntN(len(verbs))], zhObj[r.IntN(len(zhObj))])
		}
		out = append(out, filter.Example{Text: text, Block: block})
	}
	return out
}

// TestFilterLearnedStage trains the learned stage through the trainer
// service on a labelled set and serves it behind filter.check under a
// required policy. By default it trains 60 steps and checks the plumbing
// (scores, learned findings, fail closed without the classifier); with
// LLMESH_FILTER_LEARN_STEPS=800 it trains long enough to check quality on
// held-out sentences (new subjects and objects): ROC AUC and accuracy.
func TestFilterLearnedStage(t *testing.T) {
	steps, quality := 60, false
	if v := os.Getenv("LLMESH_FILTER_LEARN_STEPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("LLMESH_FILTER_LEARN_STEPS=%q: want a positive number", v)
		}
		steps, quality = n, true
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := startStack(ctx, stackConfig{
		DataDir: t.TempDir(), Services: []string{"trainer", "filter"},
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		PluginCommand: testPluginCommand,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	b := st.bus
	r := rand.New(rand.NewPCG(11, 12))
	train := learnSet(r, 400, []string{"Tom", "Anna", "my brother", "the driver", "Li Wei"}, []string{"the boss", "his neighbor", "the shop", "my teacher", "the landlord"})
	held := learnSet(r, 80, []string{"Maria", "the cook", "our uncle"}, []string{"the mayor", "her cousin", "the bakery"})
	start := time.Now()
	id, err := filter.Learn(ctx, b, filter.LearnSpec{Model: "harm-clf", Train: train, Steps: steps, LR: 0.03, Seed: 3,
		Config: map[string]any{"n_ctx": 32, "n_embd": 32, "n_layer": 1, "n_head": 2}, SeqLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer wcancel()
	if err := filter.WaitJob(wctx, b, id); err != nil {
		t.Fatal(err)
	}
	if rec, err := b.GetJob(ctx, id); err == nil {
		t.Logf("train job after %v: %s", time.Since(start), rec.ResultJson)
	}
	pol := `{"required": true, "categories": {"harm": {"action": "block"}},
		"learned": {"category": "harm", "model": "harm-clf", "threshold": 0.5}}`
	if _, err := filter.PutPolicy(ctx, b, "guarded", []byte(pol)); err != nil {
		t.Fatal(err)
	}
	check := func(text string) (*busv1.FilterCheckReply, error) {
		data, _ := proto.Marshal(&busv1.FilterCheckRequest{Model: "guarded", Text: text})
		m, err := b.Conn().RequestWithContext(ctx, bus.FilterCheckSubject, data)
		if err != nil {
			return nil, err
		}
		var rep busv1.FilterCheckReply
		return &rep, proto.Unmarshal(m.Data, &rep)
	}
	// Wait until the service has the policy.
	deadline := time.Now().Add(20 * time.Second)
	for {
		rep, err := check("hello")
		if err == nil && rep.ErrorCode == "" && rep.PolicyVersion > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("learned policy not served: %v %v", rep, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cls := filter.NewClassifiers(b, st.host, "")
	defer cls.Close()
	c, err := cls.Source(ctx, "harm-clf")
	if err != nil {
		t.Fatal(err)
	}
	// Ranking quality on the held-out set: the share of (harmful, benign)
	// pairs the classifier orders right (ROC AUC).
	var pos, neg []float32
	for _, ex := range held {
		sc, err := c.Score(ctx, ex.Text)
		if err != nil {
			t.Fatal(err)
		}
		if ex.Block {
			pos = append(pos, sc)
		} else {
			neg = append(neg, sc)
		}
	}
	right := 0.0
	for _, p := range pos {
		for _, n := range neg {
			switch {
			case p > n:
				right++
			case p == n:
				right += 0.5
			}
		}
	}
	auc := right / float64(len(pos)*len(neg))
	t.Logf("learned stage after %d steps: held-out ROC AUC %.3f", steps, auc)
	if quality && auc < 0.9 {
		t.Errorf("held-out ROC AUC %.3f, want at least 0.9", auc)
	}
	distinct := map[float32]bool{}
	for _, sc := range append(pos, neg...) {
		if !(sc >= 0 && sc <= 1) {
			t.Fatalf("score %v out of [0, 1]", sc)
		}
		distinct[sc] = true
	}
	if len(distinct) < 2 {
		t.Errorf("every held-out sentence scores the same: %v", distinct)
	}
	correct := 0
	for _, ex := range held {
		rep, err := check(ex.Text)
		if err != nil || rep.ErrorCode != "" {
			t.Fatalf("check %q: %v %v", ex.Text, rep, err)
		}
		blocked := rep.Action == "block"
		if blocked == ex.Block {
			correct++
		}
		if blocked {
			if len(rep.Findings) == 0 || rep.Findings[0].Stage != filter.StageLearned || rep.Findings[0].Score < 0.5 {
				t.Errorf("block of %q without a learned finding: %v", ex.Text, rep.Findings)
			}
		}
	}
	acc := float64(correct) / float64(len(held))
	t.Logf("learned stage after %d steps: held-out accuracy at threshold 0.5: %d/%d = %.3f", steps, correct, len(held), acc)
	if quality && acc < 0.8 {
		t.Errorf("held-out accuracy %.3f, want at least 0.8", acc)
	}

	// A policy whose classifier is not in the registry fails closed.
	bad := `{"required": true, "categories": {"harm": {"action": "block"}},
		"learned": {"category": "harm", "model": "no-such-clf", "threshold": 0.5}}`
	rev, err := filter.PutPolicy(ctx, b, "orphan", []byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		data, _ := proto.Marshal(&busv1.FilterCheckRequest{Model: "orphan", Text: "hello"})
		m, err := b.Conn().RequestWithContext(ctx, bus.FilterCheckSubject, data)
		if err != nil {
			t.Fatal(err)
		}
		var rep busv1.FilterCheckReply
		if err := proto.Unmarshal(m.Data, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.ErrorCode == "unavailable" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("policy %d with a missing classifier: %v, want unavailable", rev, &rep)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFilterInGeneration: the stack's inference service runs every prompt
// and every generated piece through the filter under the model's policy
// from the bucket.
func TestFilterInGeneration(t *testing.T) {
	st := startTestStack(t)
	runTiny(t, st.stack, 10, 10, nil)
	ctx := t.Context()
	// Any character but a digit in the output is blocked; the phrase
	// "forbidden topic" in a prompt too.
	pol := `{"categories": {"x": {"action": "block"}},
		"regexes": [{"category": "x", "name": "non-digit", "pattern": "[^0-9\\s]"}],
		"phrases": [{"category": "x", "phrases": ["forbidden topic"]}]}`
	if _, err := filter.PutPolicy(ctx, st.bus, "tiny-model", []byte(pol)); err != nil {
		t.Fatal(err)
	}
	generate := func(prompt string) (string, error) {
		var text string
		err := st.bus.Generate(ctx, &busv1.GenerateRequest{Model: "tiny-model", Prompt: prompt, MaxTokens: 12}, func(c *busv1.GenerateChunk) error {
			text += c.Text
			return nil
		})
		return text, err
	}
	var ge *bus.GenerateError
	deadline := time.Now().Add(20 * time.Second)
	for {
		text, err := generate("1")
		if errors.As(err, &ge) && ge.Code == "blocked" {
			for _, r := range text {
				if !unicode.IsDigit(r) && !unicode.IsSpace(r) {
					t.Errorf("released %q before the block", text)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("output filter not applied: %q, %v", text, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	text, err := generate("tell me about the F-O-R-B-I-D-D-E-N topic")
	if !errors.As(err, &ge) || ge.Code != "blocked" || text != "" {
		t.Errorf("prompt filter: %q, %v; want blocked and nothing", text, err)
	}
}
