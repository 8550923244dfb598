#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Regenerates tests/hf/data (run with a Python that has torch, transformers
and safetensors, e.g. /work/peers-venv/bin/python):

  untied/, tied/   GPT2LMHeadModel random-initialised by transformers and
                   written by save_pretrained (tied/ has no lm_head.weight)
  bare/            the tied weights as the hub's original gpt2 files hold
                   them: GPT2Model names (no "transformer." prefix) plus the
                   h.<i>.attn.bias causal-mask buffers
  sharded/         another untied model written by save_pretrained with
                   max_shard_size="40KB": model.safetensors.index.json and
                   several model-0000k-of-0000n.safetensors shards
  batch.bin        T + 1 bytes < vocab: with exactly T + 1 tokens train_gpt
                   takes every sequence at offset 0 (tokens data[0:T],
                   targets data[1:T+1]), so the batch is known here
  goldens.json     transformers' fp32 loss on that batch for each model, and
                   its greedy continuation (generate(do_sample=False)) of
                   PROMPT by SAMPLE_N tokens ("<model>_greedy")

The shape is small on purpose (a few hundred KB committed).
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")
SHAPE = dict(n_layer=2, n_embd=32, n_head=2, n_positions=16, vocab_size=64)


def batch():
    with open(os.path.join(OUT, "batch.bin"), "rb") as f:
        return list(f.read())


def hf_loss(model, data, T):
    """Mean cross-entropy of data[1:T+1] given data[0:T] (train_gpt's batch)."""
    x = torch.tensor([data[:T]])
    y = torch.tensor([data[1:T + 1]])
    with torch.no_grad():
        logits = model(input_ids=x).logits
    return torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)).double(), y.view(-1)).item()


PROMPT = [1, 2, 3, 4]
SAMPLE_N = 10  # 4 + 10 tokens stay inside n_positions 16


def hf_greedy(model, prompt=PROMPT, n=SAMPLE_N):
    """transformers' greedy continuation of prompt by n tokens."""
    x = torch.tensor([prompt])
    with torch.no_grad():
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=n,
                             min_new_tokens=n, pad_token_id=0)
    return out[0, len(prompt):].tolist()


def main():
    os.makedirs(OUT, exist_ok=True)
    T = SHAPE["n_positions"]
    g = torch.Generator().manual_seed(1234)
    data = torch.randint(0, SHAPE["vocab_size"], (T + 1,), generator=g).to(torch.uint8).tolist()
    with open(os.path.join(OUT, "batch.bin"), "wb") as f:
        f.write(bytes(data))
    goldens = {"seq_len": T, "vocab": SHAPE["vocab_size"], "transformers": __import__("transformers").__version__,
               "prompt": PROMPT}
    for name, tied, seed in (("untied", False, 1), ("tied", True, 2), ("sharded", False, 3)):
        torch.manual_seed(seed)
        cfg = GPT2Config(**SHAPE, tie_word_embeddings=tied, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        model = GPT2LMHeadModel(cfg).eval()
        if not tied:  # an untied head distinct from wte, so a mix-up shows in the loss
            with torch.no_grad():
                model.lm_head.weight.normal_(0.0, 0.02)
        # non-zero biases and LayerNorm affines, so a transposed or misplaced
        # tensor cannot hide behind zeros and ones
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.endswith(".bias") or "ln_" in n:
                    p.add_(torch.randn_like(p) * 0.05)
        shard = {"max_shard_size": "40KB"} if name == "sharded" else {}
        model.save_pretrained(os.path.join(OUT, name), safe_serialization=True, **shard)
        goldens[name] = hf_loss(model, data, T)
        goldens[name + "_greedy"] = hf_greedy(model)
        if tied:
            sd = {k[len("transformer."):]: v.contiguous() for k, v in model.state_dict().items()
                  if k.startswith("transformer.")}
            for i in range(SHAPE["n_layer"]):
                sd[f"h.{i}.attn.bias"] = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
            bare = os.path.join(OUT, "bare")
            os.makedirs(bare, exist_ok=True)
            save_file(sd, os.path.join(bare, "model.safetensors"), metadata={"format": "pt"})
            with open(os.path.join(OUT, name, "config.json")) as f, open(os.path.join(bare, "config.json"), "w") as g2:
                g2.write(f.read())
            goldens["bare"] = goldens[name]
            goldens["bare_greedy"] = goldens[name + "_greedy"]
    with open(os.path.join(OUT, "goldens.json"), "w") as f:
        json.dump(goldens, f, indent=1)
        f.write("\n")
    print(json.dumps(goldens))


if __name__ == "__main__":
    sys.exit(main())
