#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The loss comparison used by the GPT end-to-end test must fail when it
should: a loss off by more than rtol, different steps, NaN, no decrease."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_losses as cl  # noqa: E402


def write(tmp, name, lines):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class CompareLosses(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        d = self.tmp.name
        self.a = write(d, "a.jsonl", ['{"step": 1, "loss": 5.0}', '{"step": 2, "loss": 4.0, "x": 1}'])
        self.close = write(d, "b.jsonl", ['{"step": 1, "loss": 5.00001}', '{"step": 2, "loss": 4.00002}'])
        self.far = write(d, "c.jsonl", ['{"step": 1, "loss": 5.0}', '{"step": 2, "loss": 4.001}'])
        self.short = write(d, "d.jsonl", ['{"step": 1, "loss": 5.0}'])
        self.nan = write(d, "e.jsonl", ['{"step": 1, "loss": 5.0}', '{"step": 2, "loss": NaN}'])
        self.flat = write(d, "f.jsonl", ['{"step": 1, "loss": 5.0}', '{"step": 2, "loss": 4.9}'])
        self.bad = write(d, "g.jsonl", ['{"step": 1}'])

    def tearDown(self):
        self.tmp.cleanup()

    def test_within_tolerance(self):
        self.assertEqual(cl.main([self.a, self.close, "--rtol", "1e-5"]), 0)

    def test_outside_tolerance(self):
        self.assertEqual(cl.main([self.a, self.far, "--rtol", "1e-5"]), 1)
        msg = cl.compare(cl.load_losses(self.a), cl.load_losses(self.far), 1e-5)
        self.assertIn("step 2", msg)

    def test_different_steps(self):
        self.assertIn("different steps", cl.compare(cl.load_losses(self.a), cl.load_losses(self.short), 1e-5))

    def test_nan(self):
        self.assertEqual(cl.main([self.a, self.nan]), 1)
        self.assertEqual(cl.main(["--decreasing", self.nan]), 1)

    def test_decreasing(self):
        self.assertEqual(cl.main(["--decreasing", self.a]), 0)
        self.assertEqual(cl.main(["--decreasing", self.flat, "--drop", "0.05"]), 1)

    def test_unreadable(self):
        self.assertEqual(cl.main([self.bad, self.a]), 2)
        self.assertEqual(cl.main(["/nonexistent.jsonl", self.a]), 2)


if __name__ == "__main__":
    unittest.main()
