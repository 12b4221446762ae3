"""The masquant module without torch: statistics, calibrate, the deployable layer, errors.

References are independent of the binding: numpy for statistics and float outputs, the
`masquant` tool (MASQUANT_CLI) for calibration parameters and error messages, and the library's
own float64 reference_forward for the deployable path.
"""
import json
import os
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import warnings

import numpy as np

import masquant

CLI = os.environ.get("MASQUANT_CLI")


def read_safetensors(path):
    dtypes = {"F64": "<f8", "F32": "<f4", "I8": "i1", "I64": "<i8"}
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dtypes[info["dtype"]]).reshape(
            info["shape"])
    return out


def layer_problem(seed=0, d_in=64, d_out=48, n=(300, 200, 100)):
    """A linear and tokens of three modalities with outlier channels (larger on vision/audio)."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((d_out, d_in)) / np.sqrt(d_in)).astype(np.float32)
    b = rng.standard_normal(d_out).astype(np.float32) * 0.1
    blocks = []
    for m, rows in enumerate(n):
        x = rng.standard_normal((rows, d_in)).astype(np.float32)
        x[:, m * 3:(m * 3) + 3] *= 20.0 * (m + 1)
        blocks.append(x)
    x = np.concatenate(blocks)
    ids = np.concatenate([np.full(r, m, dtype=np.uint8) for m, r in enumerate(n)])
    return w, b, x, ids


def sqnr_db(ref, y):
    ref, y = np.asarray(ref, np.float64), np.asarray(y, np.float64)
    return 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - y) ** 2))


class StatisticsTest(unittest.TestCase):
    names = ["text", "vision", "audio"]

    def test_counts_and_absmax_match_numpy(self):
        _, _, x, ids = layer_problem()
        s = masquant.Statistics(self.names)
        s.add("p", x, ids)
        self.assertEqual(s.inputs(), ["p"])
        self.assertEqual(s.tokens("p"), {"text": 300, "vision": 200, "audio": 100})
        ref = np.stack([np.abs(x[ids == m]).max(0) for m in range(3)])
        np.testing.assert_array_equal(s.absmax("p"), ref.astype(np.float64))

    def test_any_integer_ids_and_two_batches(self):
        _, _, x, ids = layer_problem()
        s = masquant.Statistics(self.names, threads=2)
        s.add("p", x[:250], ids[:250].astype(np.int64))
        s.add("p", x[250:], ids[250:].astype(np.int32))
        one = masquant.Statistics(self.names)
        one.add("p", x, ids)
        self.assertEqual(s.tokens("p"), one.tokens("p"))
        np.testing.assert_array_equal(s.absmax("p"), one.absmax("p"))

    def test_merge_and_file_round_trip(self):
        _, _, x, ids = layer_problem()
        a, b = masquant.Statistics(self.names), masquant.Statistics(self.names)
        a.add("p", x[:320], ids[:320])
        b.add("p", x[320:], ids[320:])
        b.add("q", x[:10], ids[:10])
        a.merge(b)
        self.assertEqual(a.inputs(), ["p", "q"])
        self.assertEqual(a.tokens("p"), {"text": 300, "vision": 200, "audio": 100})
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "stats.safetensors")
            a.save(path)
            back = masquant.Statistics.load(path)
            self.assertEqual(back.modalities, self.names)
            self.assertEqual(back.tokens("p"), a.tokens("p"))
            np.testing.assert_array_equal(back.absmax("q"), a.absmax("q"))
            merged = os.path.join(d, "merged.safetensors")
            masquant.merge_statistics_files([path, path], merged)
            self.assertEqual(masquant.Statistics.load(merged).tokens("q"),
                             {"text": 20, "vision": 0, "audio": 0})

    def test_bad_input_leaves_nothing(self):
        _, _, x, ids = layer_problem()
        s = masquant.Statistics(self.names)
        bad = ids.copy()
        bad[7] = 3
        with self.assertRaisesRegex(ValueError, "token 7 has modality id 3 but only 3"):
            s.add("p", x, bad)
        self.assertEqual(len(s), 0)
        with self.assertRaisesRegex(TypeError, "dtype float64, expected float32"):
            s.add("p", x.astype(np.float64), ids)
        with self.assertRaisesRegex(TypeError, "integer dtype"):
            s.add("p", x, ids.astype(np.float32))
        with self.assertRaisesRegex(ValueError, "2-D"):
            s.add("p", x[0], ids[:1])
        with self.assertRaisesRegex(ValueError, "modality ids for"):
            s.add("p", x, ids[:-1])
        nan = x.copy()
        nan[5, 2] = np.nan
        with self.assertRaises(masquant.NonFinite):
            s.add("p", nan, ids)
        self.assertEqual(len(s), 0)
        s.add("p", x, ids)
        with self.assertRaisesRegex(ValueError, "has 64 channels, x has 32"):
            s.add("p", x[:, :32], ids)
        self.assertEqual(s.tokens("p")["text"], 300)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "no", "stats.safetensors")
            with self.assertRaises(masquant.FileError):
                s.save(path)

    def test_non_contiguous_is_copied_with_a_warning(self):
        _, _, x, ids = layer_problem()
        wide = np.zeros((x.shape[0], 2 * x.shape[1]), np.float32)
        wide[:, ::2] = x
        s, ref = masquant.Statistics(self.names), masquant.Statistics(self.names)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            s.add("p", wide[:, ::2], ids)
            ref.add("p", x, ids)
        self.assertEqual([w.category for w in caught], [masquant.CopyWarning])
        np.testing.assert_array_equal(s.absmax("p"), ref.absmax("p"))


class ErrorsTest(unittest.TestCase):
    def test_classes(self):
        for cls in (masquant.InvalidArgument, masquant.ShapeMismatch, masquant.NonFinite,
                    masquant.OutOfRange, masquant.FormatError):
            self.assertTrue(issubclass(cls, masquant.Error) and issubclass(cls, ValueError))
        self.assertTrue(issubclass(masquant.FileError, OSError))

    @unittest.skipUnless(CLI, "MASQUANT_CLI not set")
    def test_same_message_as_the_tool(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "not-stats.safetensors")
            masquant._masquant.save_tensors(path, {"a": np.zeros((2, 2), np.float32)})
            with self.assertRaises(masquant.FormatError) as e:
                masquant.Statistics.load(path)
            tool = subprocess.run([CLI, "stats", "inspect", path], capture_output=True,
                                  text=True)
            self.assertNotEqual(tool.returncode, 0)
            self.assertIn(str(e.exception), tool.stderr)
            self.assertIn("not a statistics file", str(e.exception))


class CalibrateTest(unittest.TestCase):
    settings = dict(wbits=4, abits=8, method="mas", learn_steps=0, rank=8, min_rank=0, seed=3)

    def test_from_tokens_report_and_forward(self):
        w, b, x, ids = layer_problem()
        r = masquant.calibrate(w, b, tokens=x, ids=ids, modalities=["text", "vision", "audio"],
                               **self.settings)
        lin = r.linear
        self.assertEqual((lin.d_in, lin.d_out, lin.weight_bits), (64, 48, 4))
        self.assertEqual(lin.modalities, ["text", "vision", "audio"])
        self.assertEqual([lin.rank(m) for m in range(3)], [0, 8, 8])
        report = r.report
        self.assertEqual([m["tokens"] for m in report["modalities"]], [300, 200, 100])
        y = lin.forward(x, ids)
        ref = x.astype(np.float64) @ w.T.astype(np.float64) + b
        for m in range(3):
            got = sqnr_db(ref[ids == m], y[ids == m])
            # The report measures the deployed path on the calibration tokens.
            self.assertAlmostEqual(got, report["modalities"][m]["sqnr_db"]["cmc"], delta=1e-3)
            self.assertGreater(got, 15.0)
        # The float64 reference of the same deployable math agrees with the int8 path: to 1e-3,
        # plus 2^-7 of |x / s| @ |L| @ |R| where the correction runs on bf16 activations.
        tolerance = np.full(y.shape, 1e-3)
        if lin.lowrank_uses_bf16:
            for m in (1, 2):
                L, R = lin.lowrank(m)
                xs = np.abs(x[ids == m].astype(np.float64) / lin.smooth[m])
                tolerance[ids == m] += 2.0**-7 * (xs @ np.abs(L) @ np.abs(R))
        np.testing.assert_array_less(np.abs(y - lin.reference_forward(x, ids)), tolerance)
        # No ids: every token takes the reference path.
        np.testing.assert_array_equal(lin.forward(x), lin.forward(x, np.zeros_like(ids)))
        lin.threads = 2
        np.testing.assert_array_equal(lin.forward(x, ids), y)

    def test_from_statistics_equals_from_tokens(self):
        w, b, x, ids = layer_problem()
        names = ["text", "vision", "audio"]
        tok = masquant.calibrate(w, b, tokens=x, ids=ids, modalities=names, **self.settings)
        s = masquant.Statistics(names)
        s.add("p", x, ids)
        st = masquant.calibrate(w, b, statistics=s, **self.settings)
        np.testing.assert_array_equal(st.linear.qweight, tok.linear.qweight)
        np.testing.assert_array_equal(st.linear.smooth, tok.linear.smooth)
        for m in (1, 2):
            for a, c in zip(st.linear.lowrank(m), tok.linear.lowrank(m)):
                np.testing.assert_array_equal(a, c)
        self.assertEqual(st.report["modalities"][1]["scores"], "no_sample")
        with_sample = masquant.calibrate(w, b, statistics=s, input="p", tokens=x, ids=ids,
                                         **self.settings)
        self.assertEqual(with_sample.report["modalities"][1]["scores"], "computed")

    @unittest.skipUnless(CLI, "MASQUANT_CLI not set")
    def test_same_parameters_as_the_tool(self):
        w, b, x, ids = layer_problem()
        names = ["text", "audio", "vision"]  # the tool's order: reference, then by name
        with tempfile.TemporaryDirectory() as d:
            src, out = os.path.join(d, "in.safetensors"), os.path.join(d, "out.safetensors")
            tensors = {"p.weight": w, "p.bias": b}
            for m, name in enumerate(names):
                tensors[f"p.inputs.{name}"] = x[ids == m]
            masquant._masquant.save_tensors(src, tensors)
            subprocess.run([CLI, "calibrate", src, "-o", out, "--wbits", "4", "--method", "mas",
                            "--learn-steps", "0", "--rank", "8", "--min-rank", "0",
                            "--seed", "3"], check=True, capture_output=True)
            tool = read_safetensors(out)
        mine = masquant.calibrate(w, b, tokens=x, ids=ids, modalities=names, **self.settings)
        np.testing.assert_array_equal(mine.linear.qweight, tool["p.qweight"])
        np.testing.assert_array_equal(mine.linear.wscale, tool["p.wscale"])
        for m, name in enumerate(names):
            np.testing.assert_array_equal(mine.linear.smooth[m], tool[f"p.smooth.{name}"])

    def test_bad_arguments(self):
        w, b, x, ids = layer_problem()
        with self.assertRaisesRegex(TypeError, "unexpected keyword argument 'wbit'"):
            masquant.calibrate(w, b, tokens=x, ids=ids, wbit=4)
        with self.assertRaisesRegex(masquant.InvalidArgument,
                                    'weight_bits must be in \\[2, 8\\], got 9'):
            masquant.calibrate(w, b, tokens=x, ids=ids, wbits=9)
        with self.assertRaisesRegex(ValueError, "columns are expected"):
            masquant.calibrate(w, b, tokens=x[:, :10], ids=ids)
        with self.assertRaisesRegex(ValueError, "modality id 3 but only 3"):
            masquant.calibrate(w, b, tokens=x, ids=np.full_like(ids, 3),
                               modalities=["text", "vision", "audio"])
        s = masquant.Statistics(["text", "vision"])
        s.add("p", x[:, :32], np.zeros(len(x), np.uint8))
        with self.assertRaises(masquant.ShapeMismatch):
            masquant.calibrate(w, b, statistics=s)
        lin = masquant.calibrate(w, b, tokens=x, ids=ids, rank=0).linear
        with self.assertRaisesRegex(TypeError, "float32"):
            lin.forward(x.astype(np.float16), ids)
        with self.assertRaisesRegex(ValueError, "modality id 5"):
            lin.forward(x, np.full_like(ids, 5))

    def test_gil_is_released(self):
        rng = np.random.default_rng(1)
        w = rng.standard_normal((256, 256)).astype(np.float32)
        x = rng.standard_normal((4000, 256)).astype(np.float32)
        ids = (np.arange(4000) % 2).astype(np.uint8)
        done, seconds = threading.Event(), [0.0]

        def work():
            start = time.monotonic()
            masquant.calibrate(w, None, tokens=x, ids=ids, learn_steps=50, rank=16, min_rank=0)
            seconds[0] = time.monotonic() - start
            done.set()

        # This thread's loop rate alone, then while the call runs in another thread: holding the
        # GIL for the whole call would leave it a switch interval or two (~10 ms) of it.
        ticks, end = 0, time.monotonic() + 0.05
        while time.monotonic() < end:
            ticks += 1
        rate = ticks / 0.05
        t = threading.Thread(target=work)
        ticks = 0
        t.start()
        while not done.is_set():
            ticks += 1
        t.join()
        self.assertGreater(seconds[0], 0.1)
        self.assertGreater(ticks, 0.3 * rate * seconds[0],
                           f"{ticks} iterations in {seconds[0]:.2f} s, alone {rate:.0f}/s")


if __name__ == "__main__":
    unittest.main()
