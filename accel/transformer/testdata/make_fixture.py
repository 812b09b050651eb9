#!/usr/bin/python3
"""Builds the PyTorch reference fixture for the Go transformer tests.

Run with the system Python (Debian's python3-torch):
    cd accel/transformer/testdata && /usr/bin/python3 make_fixture.py

It writes gpt_tiny.safetensors (seeded weights, GPT-2 names, F32, written by
hand with struct+json) and gpt_tiny_ref.json (inputs, targets, logits, mean
loss and sampled gradients after backward). CI does not need torch: the Go
test only reads these committed files.
"""
import json
import math
import struct

import torch

CFG = dict(vocab_size=37, n_ctx=8, n_embd=16, n_layer=2, n_head=2,
           positions="learned", norm="layernorm")
V, C, D, L, H = (CFG[k] for k in ("vocab_size", "n_ctx", "n_embd", "n_layer", "n_head"))
HD = D // H
torch.manual_seed(1234)
torch.set_default_dtype(torch.float64)  # reference in float64


def param(*shape, std=0.2, value=None):
    if value is not None:
        t = torch.full(shape, float(value)) + 0.1 * torch.randn(*shape)
    else:
        t = std * torch.randn(*shape)
    # round to float32 so Go loads exactly these values
    return t.float().double().requires_grad_()


P = {"wte": param(V, D), "wpe": param(C, D)}
for i in range(L):
    h = f"h.{i}."
    P[h + "ln_1.weight"] = param(D, value=1)
    P[h + "ln_1.bias"] = param(D)
    P[h + "attn.c_attn.weight"] = param(D, 3 * D)
    P[h + "attn.c_attn.bias"] = param(3 * D)
    P[h + "attn.c_proj.weight"] = param(D, D)
    P[h + "attn.c_proj.bias"] = param(D)
    P[h + "ln_2.weight"] = param(D, value=1)
    P[h + "ln_2.bias"] = param(D)
    P[h + "mlp.c_fc.weight"] = param(D, 4 * D)
    P[h + "mlp.c_fc.bias"] = param(4 * D)
    P[h + "mlp.c_proj.weight"] = param(4 * D, D)
    P[h + "mlp.c_proj.bias"] = param(D)
P["ln_f.weight"] = param(D, value=1)
P["ln_f.bias"] = param(D)


def ln(x, w, b):
    return torch.nn.functional.layer_norm(x, (D,), w, b, eps=1e-5)


def gelu(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(idx):
    B, T = idx.shape
    x = P["wte"][idx] + P["wpe"][torch.arange(T)]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(L):
        h = f"h.{i}."
        a = ln(x, P[h + "ln_1.weight"], P[h + "ln_1.bias"])
        qkv = a @ P[h + "attn.c_attn.weight"] + P[h + "attn.c_attn.bias"]
        q, k, v = qkv.split(D, dim=2)
        q = q.view(B, T, H, HD).transpose(1, 2)
        k = k.view(B, T, H, HD).transpose(1, 2)
        v = v.view(B, T, H, HD).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(HD)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + y @ P[h + "attn.c_proj.weight"] + P[h + "attn.c_proj.bias"]
        a = ln(x, P[h + "ln_2.weight"], P[h + "ln_2.bias"])
        m = gelu(a @ P[h + "mlp.c_fc.weight"] + P[h + "mlp.c_fc.bias"])
        x = x + m @ P[h + "mlp.c_proj.weight"] + P[h + "mlp.c_proj.bias"]
    x = ln(x, P["ln_f.weight"], P["ln_f.bias"])
    return x @ P["wte"].T


B, T = 2, 7
inputs = torch.randint(0, V, (B, T))
targets = torch.randint(0, V, (B, T))
logits = forward(inputs)
loss = torch.nn.functional.cross_entropy(logits.view(-1, V), targets.view(-1))
loss.backward()

# Sample gradient entries from every tensor (fixed positions).
g = torch.Generator().manual_seed(99)
grads = []
for name, p in P.items():
    flat = p.grad.reshape(-1)
    for j in torch.randint(0, flat.numel(), (3,), generator=g).tolist():
        grads.append({"name": name, "index": j, "value": flat[j].item()})

# safetensors by hand: 8-byte LE header length, JSON header, data.
header, blobs, off = {}, [], 0
for name, p in P.items():
    data = p.detach().float().contiguous().numpy().tobytes()
    header[name] = {"dtype": "F32", "shape": list(p.shape), "data_offsets": [off, off + len(data)]}
    blobs.append(data)
    off += len(data)
header["__metadata__"] = {"format": "pt", "config": json.dumps(CFG)}
hj = json.dumps(header, separators=(",", ":")).encode()
hj += b" " * (-len(hj) % 8)
with open("gpt_tiny.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(hj)))
    f.write(hj)
    for b in blobs:
        f.write(b)

ref = {
    "config": CFG,
    "batch": B,
    "seq_len": T,
    "inputs": inputs.reshape(-1).tolist(),
    "targets": targets.reshape(-1).tolist(),
    "logits": [round(v, 7) for v in logits.reshape(-1).tolist()],
    "loss": loss.item(),
    "grads": grads,
    "torch_version": torch.__version__,
}
with open("gpt_tiny_ref.json", "w") as f:
    json.dump(ref, f, indent=0)
    f.write("\n")
