#!/usr/bin/env python3
"""Round trip through the masquant tool with nothing but numpy.

1. Writes a layer file by the file contract (docs/file-format.md): P.weight, P.bias and the
   calibration activations P.inputs.text (F32) and P.inputs.vision (F16), with a tiny
   safetensors writer below (numpy + json; no safetensors or torch package).
2. Runs `masquant calibrate` (W4A8, MAS + compensation) and checks the output tensors, the
   metadata and the report JSON.
3. Runs `masquant forward` on the calibration tokens and on new tokens, reads P.outputs.<m>
   back, and compares them with numpy's float x·Wᵀ + b (per-modality SQNR). On the calibration
   tokens the SQNR must equal the report's `cmc` column: the report measures the deployed path.
4. Recomputes the deployed layer from the calibrated tensors in numpy (docs/cli.md gives the
   formula) and checks that masquant's outputs agree with it.

usage: roundtrip.py path/to/masquant [--workdir DIR]     (exit status 0: every check passed)
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

# --- a minimal safetensors reader and writer -----------------------------------------------

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I32": "<i4", "I8": "i1", "U8": "u1"}


def write_safetensors(path, tensors, metadata=None):
    """tensors: {name: numpy array}; float32 -> F32, float16 -> F16, ... (no BF16 in numpy)."""
    by_numpy = {np.dtype(v).newbyteorder("="): k for k, v in DTYPES.items()}
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": by_numpy[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # data starts 8-aligned, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)


def read_safetensors(path):
    """Returns ({name: numpy array}, {metadata key: value}, {name: dtype string})."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    metadata = header.pop("__metadata__", {})
    tensors, dtypes = {}, {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        data = raw[8 + n + begin:8 + n + end]
        tensors[name] = np.frombuffer(data, dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        dtypes[name] = info["dtype"]
    return tensors, metadata, dtypes


# --- a synthetic layer with modality-specific activations -----------------------------------

def activations(rng, modality, tokens, d_in):
    """Text: unit channels plus two massive ones; vision: 3x larger, low-rank, own outliers."""
    if modality == "text":
        x = rng.standard_normal((tokens, d_in))
        x[:, [5, 70]] = 40.0 + rng.standard_normal((tokens, 2))
    else:
        basis = np.sin(np.outer(np.arange(1, 9), np.arange(d_in)))  # a fixed rank-8 basis
        x = 3.0 * rng.standard_normal((tokens, 8)) @ basis
        x += 0.1 * rng.standard_normal((tokens, d_in))
        x[:, [20, 21, 100]] *= 30.0
    return x.astype(np.float32)


def sqnr_db(reference, y):
    reference = reference.astype(np.float64)
    return 10 * np.log10(np.sum(reference ** 2) / np.sum((y.astype(np.float64) - reference) ** 2))


def bf16(a):
    """Rounds float32 values to bfloat16 (nearest even), as masquant stores L and R by default."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return bits.astype(np.uint32).view(np.float32)


def deployed_forward(x, p, modality, abits):
    """The deployed layer from the calibrated tensors (docs/cli.md):
    y = Q_a(x ⊘ s_m)·Ŵᵀ + b [+ (x ⊘ s_m)·L·R]; returns y and the correction term."""
    xs = (x.astype(np.float32) / p["smooth"][modality]).astype(np.float32)
    qmax = np.float32(2 ** (abits - 1) - 1)
    delta = np.clip(np.abs(xs).max(axis=1, keepdims=True) / qmax, np.float32(1e-5), np.float32(1e4))
    q = np.clip(np.rint(xs / delta), -qmax, qmax)  # round half to even, in float32
    w_hat = p["qweight"].astype(np.float64) * p["wscale"].astype(np.float64)[:, None]
    y = (q.astype(np.float64) * delta.astype(np.float64)) @ w_hat.T + p["bias"]
    correction = np.zeros_like(y)
    if modality in p["lowrank"]:
        L, R = p["lowrank"][modality]
        L, R = bf16(L).astype(np.float64), bf16(R).astype(np.float64)
        correction = (xs.astype(np.float64) @ L) @ R
    return y + correction, correction


# --- the round trip --------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("masquant", help="path to the masquant tool")
    parser.add_argument("--workdir", help="where to write the files (default: a temporary folder)")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="masquant-roundtrip-")
    os.makedirs(workdir, exist_ok=True)
    path = lambda name: os.path.join(workdir, name)
    failures = []

    def check(condition, what):
        print(("  ok    " if condition else "  FAIL  ") + what)
        if not condition:
            failures.append(what)

    def masquant(*words):
        result = subprocess.run([args.masquant, *words], capture_output=True, text=True)
        return result.returncode, result.stdout, result.stderr

    P, d_in, d_out, tokens = "model.layers.0.mlp.up_proj", 128, 96, 256
    rng = np.random.default_rng(3)
    weight = (rng.standard_normal((d_out, d_in)) / np.sqrt(d_in)).astype(np.float32)
    bias = (0.02 * rng.standard_normal(d_out)).astype(np.float32)
    calib = {m: activations(rng, m, tokens, d_in) for m in ("text", "vision")}
    calib["vision"] = calib["vision"].astype(np.float16)  # stored as F16, read as float by masquant
    write_safetensors(path("layer.safetensors"), {
        P + ".weight": weight, P + ".bias": bias,
        P + ".inputs.text": calib["text"], P + ".inputs.vision": calib["vision"]})
    new = {m: activations(rng, m, 64, d_in) for m in ("text", "vision")}  # not seen by calibration
    write_safetensors(path("new.safetensors"), {P + ".inputs." + m: x for m, x in new.items()})

    print("masquant calibrate (W4A8):")
    code, out, err = masquant("calibrate", path("layer.safetensors"),
                              "-o", path("calibrated.safetensors"), "--wbits", "4",
                              "--learn-steps", "10", "--threads", "2", "--report", path("report.json"))
    print("\n".join("    " + line for line in out.splitlines()))
    check(code == 0, "calibrate exits with 0" + (": " + err.strip() if code else ""))
    if code != 0:
        return 1

    tensors, meta, dtypes = read_safetensors(path("calibrated.safetensors"))
    r = tensors[P + ".lowrank.vision.L"].shape[1]
    check(dtypes[P + ".qweight"] == "I8" and tensors[P + ".qweight"].shape == (d_out, d_in),
          "P.qweight is I8 [d_out, d_in]")
    check(int(np.abs(tensors[P + ".qweight"]).max()) <= 7, "4-bit levels lie in [-7, 7]")
    check(tensors[P + ".wscale"].shape == (d_out,), "P.wscale is [d_out]")
    check(all(tensors[P + ".smooth." + m].shape == (d_in,) for m in ("text", "vision")),
          "P.smooth.text and P.smooth.vision are [d_in]")
    check(tensors[P + ".lowrank.vision.R"].shape == (r, d_out) and r == 32,
          "P.lowrank.vision.L/R are [d_in, 32] and [32, d_out] (rank max(0.05·96, 32))")
    check(P + ".lowrank.text.L" not in tensors, "the reference modality has no correction")
    check(np.array_equal(tensors[P + ".bias"], bias), "P.bias is copied")
    check(meta.get("format") == "masquant" and meta.get("wbits") == "4" and meta.get("abits") == "8"
          and meta.get("reference") == "text", "metadata: format, wbits, abits, reference")

    with open(path("report.json")) as f:
        layer = json.load(f)["layers"][P]
    stages = ("rtn", "smoothquant", "mas_multiweight", "shared_no_cmc", "cmc")
    check(layer["rank"] == r, "report: rank")
    check(all(layer["modalities"][m]["tokens"] == tokens for m in ("text", "vision")),
          "report: tokens per modality")
    check(all(isinstance(layer["modalities"][m]["sqnr_db"][s], float)
              for m in ("text", "vision") for s in stages), "report: every stage has an SQNR")
    vision = layer["modalities"]["vision"]["sqnr_db"]
    check(vision["cmc"] > vision["shared_no_cmc"] + 3, "report: compensation helps vision")

    print("masquant forward:")
    p = {"smooth": {m: tensors[P + ".smooth." + m] for m in ("text", "vision")},
         "qweight": tensors[P + ".qweight"], "wscale": tensors[P + ".wscale"],
         "bias": tensors[P + ".bias"].astype(np.float64),
         "lowrank": {"vision": (tensors[P + ".lowrank.vision.L"],
                                tensors[P + ".lowrank.vision.R"])}}
    for label, inputs in (("calibration", "layer.safetensors"), ("new", "new.safetensors")):
        code, _, err = masquant("forward", path("calibrated.safetensors"), path(inputs), "-o",
                                path("outputs.safetensors"), "--threads", "2")
        check(code == 0, "forward on the %s tokens exits with 0" % label
              + (": " + err.strip() if code else ""))
        if code != 0:
            return 1
        outputs, _, _ = read_safetensors(path("outputs.safetensors"))
        source = calib if label == "calibration" else new
        for m in ("text", "vision"):
            x = source[m].astype(np.float32)
            y = outputs[P + ".outputs." + m]
            reference = x.astype(np.float64) @ weight.T.astype(np.float64) + bias
            db = sqnr_db(reference, y)
            print("    %-11s %-6s SQNR vs float x·Wᵀ + b: %6.2f dB" % (label, m, db))
            if label == "calibration":
                check(abs(db - layer["modalities"][m]["sqnr_db"]["cmc"]) < 0.01,
                      "%s: equals the report's cmc SQNR (%.2f dB)"
                      % (m, layer["modalities"][m]["sqnr_db"]["cmc"]))
            else:
                check(db > 15, "%s: above 15 dB on new tokens" % m)
            mine, correction = deployed_forward(x, p, m, 8)
            # Left: float rounding of the main product; right: bf16 rounding of x ⊘ s and x·L on
            # CPUs with AVX512_BF16 (2^-9 relative each), a fraction of the correction's size.
            err = np.linalg.norm(y - mine)
            bound = 1e-5 * np.linalg.norm(mine) + 1e-2 * np.linalg.norm(correction)
            check(err <= bound, "%s: numpy's deployed forward agrees (|diff| %.2e <= %.2e)"
                  % (m, err, bound))

    code, _, err = masquant("calibrate", path("layer.safetensors"), "-o", path("x.safetensors"),
                            "--wbits", "5x")
    check(code == 2 and "--wbits" in err, "a bad flag is a usage error (exit 2)")
    print("%d checks failed" % len(failures) if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
