# SPDX-License-Identifier: Apache-2.0
"""train_gpt's model, data order and initial weights in PyTorch, shared by
the side-by-side benchmarks (torch_gpt_cpu.py, torch_gpt_fsdp2.py). Not a
test and not a dependency of the library.

The model is examples/train_gpt's (gpt_model.c): learned position
embeddings, pre-LN blocks (ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc,
GELU tanh, mlp.c_proj), ln_f and an UNTIED lm_head without bias; LayerNorm
eps 1e-5; the loss is the mean token cross-entropy. Module and parameter
names and their order are train_gpt's registry's, so `named_parameters()`
walks the parameters in the order `train_gpt --weights_out` writes them and
`load_train_gpt_weights` can start both programs from the same weights.
What a PyTorch user would write: nn.Linear / nn.LayerNorm / nn.Embedding,
causal attention through F.scaled_dot_product_attention.

The data order is gpt_data.c's: sequence g of step s starts at offset
ex_hash(seed, 5000, s, g) mod (n - T) of the token file (one byte = one
token for the bundled corpus), so both programs see the same batches.
"""
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {  # gpt_model.c's presets
    "tiny": dict(n_layer=2, n_embd=32, n_head=2, seq_len=32, vocab=256),
    "small": dict(n_layer=4, n_embd=256, n_head=4, seq_len=128, vocab=256),
    "gpt2": dict(n_layer=12, n_embd=768, n_head=12, seq_len=1024, vocab=50257),
}


class Attention(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.c_attn = nn.Linear(C, 3 * C)  # [q | k | v], head h at columns h*hs of each
        self.c_proj = nn.Linear(C, C)
        self.nh = NH

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.nh, C // self.nh).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.c_fc = nn.Linear(C, 4 * C)
        self.c_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.attn = Attention(C, NH)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.mlp = MLP(C)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, n_layer, n_embd, n_head, seq_len, vocab):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(seq_len, n_embd)
        self.h = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, eps=1e-5)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        # GPT-2's init, as gpt_param_init: N(0, 0.02), residual projections
        # N(0, 0.02 / sqrt(2 n_layer)), zero biases, unit LayerNorm gains
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif ".ln_" in name or name.startswith("ln_f"):
                nn.init.ones_(p)
            elif name.endswith("c_proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layer))
            else:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for blk in self.h:
            x = blk(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1))


def load_train_gpt_weights(model, path):
    """Copies the raw fp32 file of `train_gpt --weights_out` (every parameter
    in registry order, row-major, (out, in) for Linear weights as in torch)
    into model; refuses a file whose size does not match."""
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    if os.path.getsize(path) != 4 * total:
        raise ValueError(f"{path}: {os.path.getsize(path)} bytes, expected {4 * total} "
                         f"({total} fp32 values) for this model shape")
    flat = torch.from_file(path, size=total, dtype=torch.float32)
    off = 0
    with torch.no_grad():
        for p in params:
            p.copy_(flat[off:off + p.numel()].view_as(p))
            off += p.numel()


_M64 = (1 << 64) - 1


def ex_hash(seed, a, b, c):
    """examples/common/trainer.c's ex_hash, bit for bit (uint64 arithmetic)."""
    x = ((seed * 0x9E3779B97F4A7C15) & _M64) ^ (((a + 0x632BE59BD9B4E019) * 0xBF58476D1CE4E5B9) & _M64) \
        ^ (((b + 0x8CB92BA72F3D8DD7) * 0x94D049BB133111EB) & _M64) ^ ((c + 0x1F83D9ABFB41BD6B) & _M64)
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def load_tokens(path):
    """The raw-byte data train_gpt reads by default: each byte one token."""
    with open(path, "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8).long()


def batch(tokens, seed, step, g0, rows, T):
    """gpt_data_sequence for sequences g0 .. g0+rows-1 of step `step`
    (1-based, as train_gpt counts): (inputs, targets), each rows x T."""
    span = tokens.numel() - T
    offs = [ex_hash(seed, 5000, step, g0 + r) % span for r in range(rows)]
    seqs = torch.stack([tokens[o:o + T + 1] for o in offs])
    return seqs[:, :-1].contiguous(), seqs[:, 1:].contiguous()
