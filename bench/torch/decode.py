#!/usr/bin/env python3
"""PyTorch partner for `llmesh bench serve`: single-stream greedy decoding.

Builds the same GPT as llmesh's accel/transformer (Pre-LN, learned positions,
LayerNorm, tanh GELU MLP of width 4*d_model, causal multi-head attention, tied
embeddings) with random weights, then decodes greedily with a KV cache: one
prefill of --prompt tokens, then --tokens single-token steps. It prints one
JSON object with the best tokens/s (generated tokens over the whole time,
prefill included) over the thread settings it tries.

Thread settings must be fixed before torch loads its BLAS, so the parent runs
one child process per setting (torch.set_num_threads x OPENBLAS/OMP threads).

Usage: decode.py [--vocab 4096] [--ctx 256] [--embd 256] [--layers 4]
                 [--heads 4] [--prompt 32] [--tokens 64] [--batch 1]
                 [--repeat 5] [--threads 2]
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
    p.add_argument("--prompt", type=int, default=32)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
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

        def forward(self, x, cache):
            B, T, D = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(D, dim=2)
            hd = D // self.h
            q, k, v = (t.view(B, T, self.h, hd).transpose(1, 2) for t in (q, k, v))
            if cache:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[:] = [k, v]
            S = k.shape[2]
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
            if T > 1:
                mask = torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T)
                att = att.masked_fill(~mask, float("-inf"))
            y = (att.softmax(dim=-1) @ v).transpose(1, 2).contiguous().view(B, T, D)
            x = x + self.c_proj(y)
            return x + self.m_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(a.vocab, a.embd)
            self.wpe = nn.Embedding(a.ctx, a.embd)
            self.h = nn.ModuleList(Block(a.embd, a.heads) for _ in range(a.layers))
            self.ln_f = nn.LayerNorm(a.embd)

        def forward(self, idx, pos, caches):
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(pos, pos + T))
            for b, c in zip(self.h, caches):
                x = b(x, c)
            return self.ln_f(x[:, -1, :]) @ self.wte.weight.t()

    m = GPT().eval()
    prompt = torch.randint(0, a.vocab, (a.batch, a.prompt))

    def generate():
        caches = [[] for _ in range(a.layers)]
        logits = m(prompt, 0, caches)
        pos = a.prompt
        for _ in range(a.tokens):
            nxt = logits.argmax(dim=-1, keepdim=True)
            if pos >= a.ctx:
                break
            logits = m(nxt, pos, caches)
            pos += 1

    with torch.inference_mode():
        generate()  # warmup
        t0 = time.perf_counter()
        for _ in range(a.repeat):
            generate()
        dt = time.perf_counter() - t0
    print(json.dumps({"tokens_per_s": a.batch * a.tokens * a.repeat / dt, "torch": torch.__version__}))


def main():
    a = parse()
    if a.child:
        child(a)
        return
    passthru = [f"--{k}={getattr(a, k)}" for k in ("vocab", "ctx", "embd", "layers", "heads", "prompt", "tokens", "batch", "repeat")]
    runs = []
    settings = sorted({(1, 1), (1, a.threads), (a.threads, 1), (a.threads, a.threads)})
    for torch_threads, blas_threads in settings:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas_threads), OMP_NUM_THREADS=str(blas_threads))
        p = subprocess.run([sys.executable, __file__, f"--child={torch_threads}"] + passthru,
                           env=env, capture_output=True, text=True)
        if p.returncode != 0:
            print(p.stderr.strip()[-500:], file=sys.stderr)
            sys.exit(1)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        r.update(set_num_threads=torch_threads, blas_threads=blas_threads)
        runs.append(r)
    best = max(runs, key=lambda r: r["tokens_per_s"])
    print(json.dumps({"tokens_per_s": best["tokens_per_s"], "best": best, "runs": runs}))


if __name__ == "__main__":
    main()
