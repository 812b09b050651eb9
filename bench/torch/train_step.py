#!/usr/bin/env python3
"""PyTorch partner for `llmesh bench train-step`.

Trains the same GPT as llmesh's accel/transformer (Pre-LN, learned positions,
LayerNorm, tanh GELU MLP of width 4*d_model, causal multi-head attention, tied
embeddings) with AdamW for a few steps and prints one JSON object with the
fastest tokens/s over the thread settings it tries (and, apart, the best
tokens per CPU-second: process CPU time, all threads, which a loaded machine
disturbs less than wall time).

Thread settings must be fixed before torch loads OpenBLAS, so the parent runs
one child process per setting (torch.set_num_threads x OPENBLAS/OMP threads).

Usage: train_step.py [--vocab 4096] [--ctx 256] [--embd 256] [--layers 4]
                     [--heads 4] [--batch 8] [--steps 3] [--threads 2]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--ctx", type=int, default=256)
    p.add_argument("--embd", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="cores to use")
    p.add_argument("--child", type=int, default=0, help="internal: torch.set_num_threads for one measurement")
    return p.parse_args()


def child(a):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(a.child)
    torch.manual_seed(1)

    class Block(nn.Module):
        def __init__(self, d, h):
            super().__init__()
            self.h = h
            self.ln_1 = nn.LayerNorm(d)
            self.c_attn = nn.Linear(d, 3 * d)
            self.c_proj = nn.Linear(d, d)
            self.ln_2 = nn.LayerNorm(d)
            self.c_fc = nn.Linear(d, 4 * d)
            self.m_proj = nn.Linear(4 * d, d)

        def forward(self, x):
            B, T, D = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(D, dim=2)
            hd = D // self.h
            q, k, v = (t.view(B, T, self.h, hd).transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
            mask = torch.ones(T, T, dtype=torch.bool).tril()
            att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(B, T, D)
            x = x + self.c_proj(y)
            return x + self.m_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(a.vocab, a.embd)
            self.wpe = nn.Embedding(a.ctx, a.embd)
            self.h = nn.ModuleList(Block(a.embd, a.heads) for _ in range(a.layers))
            self.ln_f = nn.LayerNorm(a.embd)

        def forward(self, idx, tgt):
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(T))
            for b in self.h:
                x = b(x)
            logits = self.ln_f(x) @ self.wte.weight.t()
            return F.cross_entropy(logits.view(-1, a.vocab), tgt.view(-1))

    m = GPT()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    idx = torch.randint(0, a.vocab, (a.batch, a.ctx))
    tgt = torch.randint(0, a.vocab, (a.batch, a.ctx))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = m(idx, tgt)
        loss.backward()
        opt.step()
        return loss.item()

    step()  # warmup
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(a.steps):
        step()
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    tokens = a.batch * a.ctx * a.steps
    print(json.dumps({"tokens_per_s": tokens / dt, "tokens_per_cpu_s": tokens / dc, "torch": torch.__version__}))


def main():
    a = parse()
    if a.child:
        child(a)
        return
    passthru = [f"--{k}={getattr(a, k)}" for k in ("vocab", "ctx", "embd", "layers", "heads", "batch", "steps")]
    runs = []
    settings = sorted({(1, a.threads), (a.threads, 1), (a.threads, a.threads)})
    for torch_threads, blas_threads in settings:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas_threads), OMP_NUM_THREADS=str(blas_threads))
        p = subprocess.run([sys.executable, __file__, f"--child={torch_threads}"] + passthru,
                           env=env, capture_output=True, text=True)
        if p.returncode != 0:
            print(json.dumps({"error": p.stderr.strip()[-500:]}))
            sys.exit(1)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        r.update(set_num_threads=torch_threads, blas_threads=blas_threads)
        runs.append(r)
    best = max(runs, key=lambda r: r["tokens_per_s"])
    best_cpu = max(runs, key=lambda r: r["tokens_per_cpu_s"])
    print(json.dumps({"tokens_per_s": best["tokens_per_s"], "best": best,
                      "tokens_per_cpu_s": best_cpu["tokens_per_cpu_s"], "best_cpu": best_cpu, "runs": runs}))


if __name__ == "__main__":
    main()
