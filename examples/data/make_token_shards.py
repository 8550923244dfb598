#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Makes the bundled tokenized sample: examples/data/corpus_bpe/shard_00{0,1}.bin
and the tokenizer that decodes it, corpus_bpe/tokenizer.bin.

No GPT-2 tokenizer is available offline, so this learns its own byte-pair
merges (256 byte tokens + MERGES merges, most frequent pair first, within
whitespace-delimited words) on the first SAMPLE bytes of corpus.txt. What
matters for train_gpt is the file format, llm.c's (karpathy/llm.c
dev/data/data_common.py, read by llmc/dataloader.h): 256 little-endian
int32 of header (magic 20240520, version 1, token count), then the tokens as
little-endian uint16. Deterministic: same input, same bytes.

  python3 examples/data/make_token_shards.py
"""
import collections
import os
import re
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = 64 * 1024
MERGES = 256  # vocab 512


def learn(words):
    """words: Counter of byte tuples. Returns the merge list [(a, b) -> new id]."""
    seqs = {w: list(w) for w in words}
    merges = []
    for new in range(256, 256 + MERGES):
        pairs = collections.Counter()
        for w, n in words.items():
            s = seqs[w]
            for i in range(len(s) - 1):
                pairs[(s[i], s[i + 1])] += n
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))[0]
        merges.append(best)
        for w in words:
            seqs[w] = apply(seqs[w], best, new)
    return merges


def apply(s, pair, new):
    out, i = [], 0
    while i < len(s):
        if i + 1 < len(s) and (s[i], s[i + 1]) == pair:
            out.append(new)
            i += 2
        else:
            out.append(s[i])
            i += 1
    return out


def encode(text, merges):
    toks = []
    cache = {}
    for w in re.findall(rb"\s*\S+|\s+", text):
        if w not in cache:
            s = list(w)
            for k, pair in enumerate(merges):
                s = apply(s, pair, 256 + k)
            cache[w] = s
        toks.extend(cache[w])
    return toks


def write_shard(path, toks):
    header = [0] * 256
    header[0], header[1], header[2] = 20240520, 1, len(toks)
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *header))
        f.write(struct.pack(f"<{len(toks)}H", *toks))


def write_tokenizer(path, merges):
    """llm.c's tokenizer.bin (llmc/tokenizer.h reads it; train_gpt --sample
    decodes with it): 256 little-endian uint32 of header (magic 20240328,
    version 2, vocab size, EOT id: this BPE has no end-of-text token, so the
    vocab size, an id no token has), then per token a uint8 length and its
    bytes. Token 256 + k is the concatenation of merge k's pair."""
    pieces = [bytes([b]) for b in range(256)]
    for a, b in merges:
        pieces.append(pieces[a] + pieces[b])
    if max(len(p) for p in pieces) > 255:
        raise SystemExit("a token is longer than 255 bytes: llm.c's format cannot hold it")
    header = [0] * 256
    header[0], header[1], header[2], header[3] = 20240328, 2, len(pieces), len(pieces)
    with open(path, "wb") as f:
        f.write(struct.pack("<256I", *header))
        for p in pieces:
            f.write(bytes([len(p)]) + p)


def main():
    text = open(os.path.join(HERE, "corpus.txt"), "rb").read()[:SAMPLE]
    words = collections.Counter(tuple(w) for w in re.findall(rb"\s*\S+|\s+", text))
    merges = learn(words)
    toks = encode(text, merges)
    out = os.path.join(HERE, "corpus_bpe")
    os.makedirs(out, exist_ok=True)
    half = len(toks) // 2
    write_shard(os.path.join(out, "shard_000.bin"), toks[:half])
    write_shard(os.path.join(out, "shard_001.bin"), toks[half:])
    write_tokenizer(os.path.join(out, "tokenizer.bin"), merges)
    print(f"{len(text)} bytes -> {len(toks)} tokens, vocab {256 + len(merges)}, max id {max(toks)}")


if __name__ == "__main__":
    main()
