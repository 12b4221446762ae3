"""masquant.torch: capture, statistics files, quantize_checkpoint, MasquantLinear, sequential
calibration, and the end-to-end example (examples/python/multimodal_qwen2.py).

References: the linears' inputs collected by plain PyTorch hooks and reduced with numpy, the
`masquant` tool (MASQUANT_CLI) for `stats merge`, masquant.QuantizedLinear.forward for the
module's outputs, and the float model for SQNR.
"""
import copy
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover - the suite needs python3-torch
    raise unittest.SkipTest("torch is not installed")

import masquant
import masquant.torch as mqt

sys.path.insert(0, os.environ.get("MASQUANT_EXAMPLES",
                                  os.path.join(os.path.dirname(__file__), "../../examples/python")))
import multimodal_qwen2 as ex  # noqa: E402

CLI = os.environ.get("MASQUANT_CLI")
torch.set_num_threads(1)


def small_model(blocks=2, d=64, seed=0):
    return ex.MultimodalQwen2(d=d, heads=4, kv_heads=2, inter=96, blocks=blocks, seed=seed).eval()


def batches(n, seed=0, seq=64):
    return [ex.make_batch(seed + i, seq=seq, images=12, audio=8) for i in range(n)]


def plain_inputs(model, names, data):
    """The inputs of the named linears over `data`, with plain hooks: {name: float32 [n, d]}."""
    seen, handles = {n: [] for n in names}, []
    modules = dict(model.named_modules())
    for n in names:
        handles.append(modules[n].register_forward_pre_hook(
            lambda mod, args, n=n: seen[n].append(args[0].reshape(-1, args[0].shape[-1]))))
    with torch.no_grad():
        for b in data:
            model(**b)
    for h in handles:
        h.remove()
    return {n: torch.cat(v).numpy() for n, v in seen.items()}


def write_checkpoint(model, directory):
    """The model's state as a Hugging Face checkpoint (config.json + model.safetensors)."""
    os.makedirs(directory)
    tensors = {k: v.detach().float().contiguous().numpy() for k, v in model.state_dict().items()}
    masquant._masquant.save_tensors(os.path.join(directory, "model.safetensors"), tensors)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({"model_type": "qwen2"}, f)


class CaptureTest(unittest.TestCase):
    def test_statistics_match_plain_hooks(self):
        model, data = small_model(), batches(3)
        with mqt.capture(model, special_tokens=ex.SPECIAL_TOKENS, recipe="llama") as cap:
            with torch.no_grad():
                for b in data:
                    model(**b)
        self.assertEqual(cap.modalities, ["text", "image", "audio"])
        keys = sorted(set(cap.linears.values()))
        # q/k/v share q_proj's record and gate/up gate_proj's (the recipe's groups).
        self.assertEqual(keys, sorted(f"model.layers.{i}.{p}" for i in range(2) for p in
                                      ("self_attn.q_proj", "self_attn.o_proj", "mlp.gate_proj",
                                       "mlp.down_proj")))
        self.assertEqual(cap.linears["model.layers.1.self_attn.v_proj"],
                         "model.layers.1.self_attn.q_proj")
        inputs = plain_inputs(model, keys, data)
        mod = torch.cat([ex.modality_of(b) for b in data]).numpy()
        for key in keys:
            x = inputs[key]
            self.assertEqual(cap.statistics.tokens(key),
                             {"text": int((mod == 0).sum()), "image": int((mod == 1).sum()),
                              "audio": int((mod == 2).sum())})
            ref = np.stack([np.abs(x[mod == m]).max(0) for m in range(3)])
            np.testing.assert_array_equal(cap.statistics.absmax(key), ref)

    def test_padding_sample_and_hooks_removed(self):
        model, data = small_model(), batches(2)
        pad = int(data[0]["input_ids"][0, 0])
        with mqt.capture(model, special_tokens=ex.SPECIAL_TOKENS, ignore_token_ids=[pad],
                         sample_tokens=10, targets=["*.o_proj"], recipe=None) as cap:
            with torch.no_grad():
                for b in data:
                    model(**b)
        key = "model.layers.0.self_attn.o_proj"
        ids = torch.cat([b["input_ids"].reshape(-1) for b in data])
        self.assertEqual(sum(cap.statistics.tokens(key).values()), int((ids != pad).sum()))
        x, sample_ids = cap.sample(key)
        self.assertEqual(np.bincount(sample_ids, minlength=3).tolist(), [10, 10, 10])
        every = plain_inputs(model, [key], data)[key]
        # Each sampled row is one of the inputs, of its modality.
        mod = torch.cat([ex.modality_of(b) for b in data]).numpy()
        for row, m in zip(x, sample_ids):
            hits = np.nonzero((every == row).all(1))[0]
            self.assertTrue(len(hits) > 0 and (mod[hits] == m).all())
        before = cap.statistics.tokens(key)
        with torch.no_grad():
            model(**data[0])  # after the context: no more capture
        self.assertEqual(cap.statistics.tokens(key), before)

    def test_bad_selections(self):
        model = small_model()
        with self.assertRaisesRegex(TypeError, "Embedding, not a torch.nn.Linear"):
            mqt.capture(model, special_tokens=ex.SPECIAL_TOKENS, targets=["model.embed_tokens"],
                        recipe=None)
        with self.assertRaisesRegex(ValueError, "'\\*.nope_proj' matches no linear"):
            mqt.capture(model, special_tokens=ex.SPECIAL_TOKENS, targets=["*.nope_proj"],
                        recipe=None)
        with self.assertRaisesRegex(ValueError, "'video' is not a non-reference modality"):
            mqt.capture(model, special_tokens={"video": 7}, modalities=["text", "image"])
        with self.assertRaisesRegex(ValueError, "the recipe's modalities \\['text', 'vision'\\]"):
            mqt.capture(model, special_tokens=ex.SPECIAL_TOKENS, recipe="qwen2_5_vl")
        # A capture that fails leaves no hook behind.
        self.assertEqual(len(model.model.embed_tokens._forward_pre_hooks), 0)
        cap = mqt.capture(model, special_tokens=ex.SPECIAL_TOKENS)
        with self.assertRaisesRegex(ValueError, "no statistics to save"):
            cap.save("never-written.safetensors")
        self.assertFalse(os.path.exists("never-written.safetensors"))
        cap.tokens.set(torch.zeros(5, dtype=torch.long))
        with self.assertRaisesRegex(ValueError, "values in \\[0, 3\\] but only 3"):
            cap.tokens.set(torch.tensor([0, 3]))
        cap.remove()


class QuantizeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def capture_file(self, model, data, name):
        path = os.path.join(self.dir, name)
        with mqt.capture(model, special_tokens=ex.SPECIAL_TOKENS) as cap:
            with torch.no_grad():
                for b in data:
                    model(**b)
        cap.save(path)
        return path

    def test_files_merge_quantize_and_run(self):
        model = small_model()
        a = self.capture_file(model, batches(2, seed=0), "a.safetensors")
        b = self.capture_file(model, batches(2, seed=10), "b.safetensors")
        merged = os.path.join(self.dir, "stats.safetensors")
        if CLI:  # the tool reads what capture writes
            subprocess.run([CLI, "stats", "merge", a, b, "-o", merged], check=True,
                           capture_output=True)
        else:
            masquant.merge_statistics_files([a, b], merged)
        ckpt, out = os.path.join(self.dir, "model"), os.path.join(self.dir, "quantized")
        write_checkpoint(model, ckpt)
        seen = []
        result = masquant.quantize_checkpoint(ckpt, out, statistics=[merged], wbits=8,
                                              learn_steps=0, progress=seen.append)
        self.assertEqual(len(result["linears"]), 14)
        self.assertTrue(any(p["finished"] for p in seen))
        quantized = copy.deepcopy(model)
        tokens = mqt.TokenModalities(quantized, ex.SPECIAL_TOKENS)
        names = mqt.load_quantized(quantized, out, tokens)
        self.assertEqual(len(names), 14)
        layer = quantized.model.layers[0].self_attn.k_proj
        self.assertIsInstance(layer, mqt.MasquantLinear)
        # The module runs the deployable layer with each token's modality.
        data = batches(1, seed=99)[0]
        x = plain_inputs(quantized, ["model.layers.0.self_attn.k_proj"], [data])[
            "model.layers.0.self_attn.k_proj"]
        with torch.no_grad():
            tokens.from_input_ids(data["input_ids"])
            y = layer(torch.from_numpy(x)).numpy()
        ids = ex.modality_of(data).numpy().astype(np.uint8)
        np.testing.assert_array_equal(y, layer.layer.forward(x, ids))
        self.assertFalse(np.array_equal(y, layer.layer.forward(x)))  # image/audio: low rank
        with torch.no_grad():
            ref, got = model(**data), quantized(**data)
        self.assertGreater(ex.sqnr_by_modality(quantized, [ref], [data])["image"], 20.0)
        self.assertFalse(torch.equal(ref, got))

    def test_token_sample_feeds_learning(self):
        model, data = small_model(blocks=1), batches(2)
        stats, sample = (os.path.join(self.dir, f) for f in ("s.safetensors", "t.safetensors"))
        with mqt.capture(model, special_tokens=ex.SPECIAL_TOKENS, sample_tokens=16) as cap:
            with torch.no_grad():
                for b in data:
                    model(**b)
        cap.save(stats, sample)
        ckpt, out = os.path.join(self.dir, "model"), os.path.join(self.dir, "quantized")
        write_checkpoint(model, ckpt)
        with_sample = masquant.quantize_checkpoint(ckpt, out, statistics=stats, tokens=sample,
                                                   learn_steps=3)
        q = with_sample["linears"]["model.layers.0.self_attn.q_proj"]
        self.assertEqual(q["learning"]["steps"], 3)
        self.assertEqual(q["modalities"][1]["scores"], "computed")
        without = masquant.quantize_checkpoint(ckpt, out + "2", statistics=stats, learn_steps=3)
        q = without["linears"]["model.layers.0.self_attn.q_proj"]
        self.assertEqual(q["learning"]["steps"], 0)
        self.assertTrue(any(phase == "learning" for phase, _ in q["skipped"]))

    def test_replace_checks_the_module(self):
        model = small_model(blocks=1)
        with mqt.capture(model, special_tokens=ex.SPECIAL_TOKENS) as cap:
            with torch.no_grad():
                model(**batches(1)[0])
        layers = mqt.quantize_linears(model, cap, learn_steps=0)
        q = layers["model.layers.0.self_attn.q_proj"].linear
        with self.assertRaisesRegex(TypeError, "is a RMSNorm, not a linear"):
            mqt.replace_linears(model, {"model.layers.0.input_layernorm": q})
        with self.assertRaisesRegex(ValueError, "64 -> 32, the quantized layer 64 -> 64"):
            mqt.replace_linears(model, {"model.layers.0.self_attn.k_proj": q})
        with self.assertRaisesRegex(TypeError, "expected a masquant.QuantizedLinear"):
            mqt.MasquantLinear(torch.nn.Linear(4, 4))

    def test_statistics_of_another_model(self):
        other = self.capture_file(small_model(d=32), batches(1), "other.safetensors")
        ckpt, out = os.path.join(self.dir, "model"), os.path.join(self.dir, "quantized")
        write_checkpoint(small_model(), ckpt)
        with self.assertRaisesRegex(ValueError, "channels"):
            masquant.quantize_checkpoint(ckpt, out, statistics=[other])
        self.assertFalse(os.path.exists(out))

    def test_sequential(self):
        model, data = small_model(), batches(3)
        evals = batches(2, seed=50)
        with torch.no_grad():
            ref = [model(**b) for b in evals]
        seq = copy.deepcopy(model)
        blocks_done = []
        done = mqt.calibrate_sequential(seq, data, special_tokens=ex.SPECIAL_TOKENS, wbits=4,
                                        learn_steps=0, progress=lambda i, n: blocks_done.append(n))
        self.assertEqual(blocks_done, ["model.layers.0", "model.layers.1"])
        self.assertEqual(len(done), 14)
        self.assertIsInstance(seq.model.layers[1].mlp.down_proj, mqt.MasquantLinear)
        # Block 1 was calibrated on block 0's quantized outputs: its statistics differ from the
        # float model's, so its parameters do too; block 0's are the same.
        with mqt.capture(model, special_tokens=ex.SPECIAL_TOKENS) as cap:
            with torch.no_grad():
                for b in data:
                    model(**b)
        flat = mqt.quantize_linears(model, cap, wbits=4, learn_steps=0)
        q0 = "model.layers.0.self_attn.q_proj"
        q1 = "model.layers.1.self_attn.q_proj"
        np.testing.assert_array_equal(done[q0].linear.qweight, flat[q0].linear.qweight)
        self.assertFalse(np.array_equal(done[q1].linear.smooth, flat[q1].linear.smooth))
        scores = ex.sqnr_by_modality(seq, ref, evals)
        self.assertGreater(min(scores.values()), 5.0)


class ExampleTest(unittest.TestCase):
    def test_method_ordering(self):
        r = ex.run(blocks=2, calibration=4, evaluation=2)
        for bits in (8, 4):
            sq, mas, mq = (r[f"{m}_w{bits}a8"] for m in ("smoothquant", "mas", "masquant"))
            for modality in ("image", "audio"):
                self.assertGreater(mq[modality], mas[modality] + 3.0, (bits, modality, r))
            self.assertGreaterEqual(mas["text_only"], sq["text_only"], (bits, r))
            # MASQuant's text path is MAS's.
            self.assertEqual(mq["text_only"], mas["text_only"])


if __name__ == "__main__":
    unittest.main()
