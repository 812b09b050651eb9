package tokbench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/llmesh/llmesh/services/internal/bpe"
)

// HFScript is the partner script, relative to the repository root.
const HFScript = "bench/tokenizers/hf_train.mjs"

// hfPartnerName names the HF partner in results.
const hfPartnerName = "hf-tokenizers (npm tokenizers, Rust)"

// findRepoFile looks for rel in start and each folder above it and returns
// the folder that holds it, or "".
func findRepoFile(start, rel string) string {
	dir, err := filepath.Abs(start)
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, rel)); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
}

// hfCommand returns the command that trains with HF tokenizers on textFile,
// or a note saying why it cannot run (and how to make it run).
func (o *Options) hfCommand(ctx context.Context, textFile string) (*exec.Cmd, string) {
	root := o.RepoRoot
	if root == "" {
		wd, _ := os.Getwd()
		root = findRepoFile(wd, HFScript)
	}
	script := filepath.Join(root, HFScript)
	if _, err := os.Stat(script); root == "" || err != nil {
		return nil, fmt.Sprintf("partner script %s not found (run from the llmesh checkout or pass its root)", HFScript)
	}
	dir := filepath.Dir(script)
	node := o.Node
	if node == "" {
		node = "node"
	}
	nodePath, err := exec.LookPath(node)
	if err != nil {
		return nil, fmt.Sprintf("node not found on PATH: install Node.js 20 or later, then run npm ci --prefix %s", filepath.Dir(HFScript))
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "tokenizers", "package.json")); err != nil {
		if !o.InstallPartners {
			return nil, fmt.Sprintf("npm package tokenizers not installed: run npm ci --prefix %s, or pass --install-partners", filepath.Dir(HFScript))
		}
		o.logf("installing the HF partner: npm ci --prefix %s", dir)
		npm := filepath.Join(filepath.Dir(nodePath), "npm")
		if _, err := os.Stat(npm); err != nil {
			npm = "npm"
		}
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--prefix", dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Sprintf("npm ci --prefix %s failed: %v: %s", dir, err, lastLine(string(out), 300))
		}
	}
	cmd := exec.CommandContext(ctx, nodePath, script, textFile, strconv.Itoa(o.Vocab), o.hfPattern())
	cmd.Dir = dir
	return cmd, ""
}

// hfPattern is the pre-tokenizer regex handed to the HF script: the one our
// tokenizer.json carries, so both trainers count the same pre-tokens.
func (o *Options) hfPattern() string {
	return bpe.PreTokenizerPattern
}
