#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Generates examples/data/corpus.txt: the byte-level training text bundled
with the GPT example.

The text is produced here from a small hand-written grammar (every word list
and template below was written for this project), so it carries no
third-party copyright. It is English-like, with recurring characters,
places, numbers and dialogue, so a byte-level model has real structure to
learn: spelling, punctuation, agreement, and longer-range repetition.

Deterministic: the same seed always writes the same bytes.

    python3 examples/data/gen_corpus.py [--seed 7] [--kb 260] [--out PATH]
"""
import argparse
import os
import random
import textwrap

NAMES = ["Ada", "Bram", "Cora", "Dov", "Elin", "Farid", "Greta", "Hugo", "Ines", "Jonas",
         "Kira", "Lev", "Mara", "Nils", "Odile", "Piet", "Quin", "Rosa", "Sami", "Tova"]
TRADES = ["baker", "smith", "weaver", "miller", "potter", "ferryman", "clockmaker",
          "gardener", "fisher", "teacher", "carpenter", "beekeeper", "glassblower"]
PLACES = ["the harbour", "the mill", "the old bridge", "the market square", "the orchard",
          "the lighthouse", "the school", "the north road", "the river bank", "the chapel hill",
          "the bakery", "the forge", "the library", "the salt marsh"]
THINGS = ["a basket of apples", "a copper kettle", "three candles", "a map of the coast",
          "a loaf of rye bread", "a broken clock", "a jar of honey", "a bundle of letters",
          "a blue scarf", "a lantern", "two sacks of flour", "a wooden flute",
          "a net full of herring", "a book of sums"]
WEATHER = ["the rain came in from the sea", "the wind turned cold", "a thin fog lay on the water",
           "the sun was warm on the stones", "snow fell softly all night",
           "the sky cleared after noon", "a storm gathered over the hills"]
SEASONS = ["spring", "summer", "autumn", "winter"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
FEELINGS = ["glad", "tired", "worried", "curious", "proud", "restless", "calm", "hungry"]
VERBS_PAST = ["carried", "mended", "sold", "found", "painted", "counted", "borrowed", "hid"]
ADVERBS = ["slowly", "quietly", "at once", "with care", "before dawn", "after supper"]
NUMBER_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve"]


def pick(r, xs):
    return r.choice(xs)


def person(r):
    return f"{pick(r, NAMES)} the {pick(r, TRADES)}"


def sentence(r):
    kind = r.randrange(10)
    if kind == 0:
        return f"On {pick(r, DAYS)} {person(r)} walked to {pick(r, PLACES)} {pick(r, ADVERBS)}."
    if kind == 1:
        a, b = r.sample(NAMES, 2)
        return f"{a} {pick(r, VERBS_PAST)} {pick(r, THINGS)} and gave it to {b}."
    if kind == 2:
        return f"In {pick(r, SEASONS)} {pick(r, WEATHER)}, and the village was {pick(r, FEELINGS)}."
    if kind == 3:
        n = r.randrange(2, 40)
        m = r.randrange(2, 40)
        return f"{pick(r, NAMES)} counted {n} and {m} and wrote down {n + m}."
    if kind == 4:
        a, b = r.sample(NAMES, 2)
        thing = pick(r, THINGS)
        return (f"\"Have you seen {thing}?\" asked {a}. \"I left it near {pick(r, PLACES)},\" "
                f"said {b}.")
    if kind == 5:
        k = r.randrange(len(NUMBER_WORDS))
        return (f"It took {NUMBER_WORDS[k]} {'hour' if k == 0 else 'hours'} to reach "
                f"{pick(r, PLACES)} because {pick(r, WEATHER)}.")
    if kind == 6:
        t = pick(r, TRADES)
        return f"Every {t} knows that a good {t} starts work before the bells ring."
    if kind == 7:
        a = pick(r, NAMES)
        return f"{a} felt {pick(r, FEELINGS)}, so {a} {pick(r, VERBS_PAST)} {pick(r, THINGS)} {pick(r, ADVERBS)}."
    if kind == 8:
        h = r.randrange(1, 13)
        mnt = r.randrange(0, 60)
        return f"The ferry left {pick(r, PLACES)} at {h}:{mnt:02d} and came back before dark."
    return f"When {pick(r, WEATHER)}, {person(r)} stayed near {pick(r, PLACES)}."


def paragraph(r):
    return textwrap.fill(" ".join(sentence(r) for _ in range(r.randrange(3, 8))), width=78)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--kb", type=int, default=260, help="approximate size in KiB (<= 300)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus.txt"))
    args = ap.parse_args()
    if not 1 <= args.kb <= 300:
        ap.error(f"--kb {args.kb} is out of range (allowed: 1..300)")
    r = random.Random(args.seed)
    out, size, chapter = [], 0, 1
    while size < args.kb * 1024:
        block = [f"Chapter {chapter}", ""]
        for _ in range(r.randrange(4, 9)):
            block += [paragraph(r), ""]
        text = "\n".join(block) + "\n"
        out.append(text)
        size += len(text.encode("ascii"))
        chapter += 1
    with open(args.out, "w", encoding="ascii", newline="\n") as f:
        f.write("".join(out))


if __name__ == "__main__":
    main()
