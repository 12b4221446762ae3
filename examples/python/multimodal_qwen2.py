#!/usr/bin/env python3
"""MASQuant end to end on a small Qwen2-style multimodal model, from PyTorch (no downloads).

The model (defined below): RMSNorm, rotary attention with grouped k/v heads, a SwiGLU MLP, a
few decoder blocks; random weights with injected massive-activation channels in the residual
stream; "image" and "audio" tokens enter through their own projections at their placeholder
ids, with larger, low-rank activations and outlier channels of their own — the situation
MASQuant is for: one smoothing vector per modality, one shared quantized weight, a low-rank
correction for the non-reference modalities.

Steps: capture per-modality statistics with masquant.torch (modality from the placeholder ids),
calibrate every decoder linear from them with SmoothQuant, MAS without compensation and
MASQuant at W8A8 and W4A8, swap the linears for MasquantLinear modules, and report per modality
the SQNR of the last block's hidden states against the float model (the paper's Fig. 1 metric).
With --sequential, MASQuant is also calibrated block by block on the quantized model's own
activations (masquant.torch.calibrate_sequential).

usage: multimodal_qwen2.py [--blocks 3] [--sequential] [--json OUT]
"""
import argparse
import copy
import json
import math
import sys

import numpy as np
import torch
from torch import nn

import masquant.torch as mqt

IMAGE_ID, AUDIO_ID = 500, 501
SPECIAL_TOKENS = {"image": [IMAGE_ID], "audio": [AUDIO_ID]}


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


def rotary(x, positions, base=10000.0):
    """Rotary position embedding on the last dimension of x [batch, heads, seq, head_dim]."""
    half = x.shape[-1] // 2
    freqs = base ** (-torch.arange(half, dtype=torch.float32) / half)
    angles = positions[:, None].float() * freqs[None, :]
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, d, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, d // heads
        self.q_proj = nn.Linear(d, d, bias=True)
        self.k_proj = nn.Linear(d, kv_heads * self.head_dim, bias=True)
        self.v_proj = nn.Linear(d, kv_heads * self.head_dim, bias=True)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x):
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        pos = torch.arange(s)
        q, k = rotary(q, pos), rotary(k, pos)
        rep = self.heads // self.kv_heads  # grouped k/v: each k/v head serves `rep` q heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        causal = torch.ones(s, s, dtype=torch.bool).triu(1)
        attn = scores.masked_fill(causal, float("-inf")).softmax(-1)
        return self.o_proj((attn @ v).transpose(1, 2).reshape(b, s, -1))


class MLP(nn.Module):
    def __init__(self, d, inter):
        super().__init__()
        self.gate_proj = nn.Linear(d, inter, bias=False)
        self.up_proj = nn.Linear(d, inter, bias=False)
        self.down_proj = nn.Linear(inter, d, bias=False)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, d, heads, kv_heads, inter):
        super().__init__()
        self.input_layernorm = RMSNorm(d)
        self.self_attn = Attention(d, heads, kv_heads)
        self.post_attention_layernorm = RMSNorm(d)
        self.mlp = MLP(d, inter)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class Encoder(nn.Module):
    """A modality's own path into the decoder: low-rank features, projected to the width."""

    def __init__(self, features, d):
        super().__init__()
        self.proj = nn.Linear(features, d, bias=False)

    def forward(self, f):
        return self.proj(f)


class Decoder(nn.Module):
    def __init__(self, vocab, d, heads, kv_heads, inter, blocks):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(Block(d, heads, kv_heads, inter) for _ in range(blocks))
        self.norm = RMSNorm(d)


class MultimodalQwen2(nn.Module):
    """model(input_ids, image_features, audio_features) -> the last block's hidden states."""

    def __init__(self, vocab=512, d=128, heads=4, kv_heads=2, inter=352, blocks=3, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.model = Decoder(vocab, d, heads, kv_heads, inter, blocks)
        self.visual = Encoder(8, d)
        self.audio_tower = Encoder(6, d)
        self._init_weights(seed)

    @torch.no_grad()
    def _init_weights(self, seed):
        g = torch.Generator().manual_seed(seed)
        d = self.model.embed_tokens.embedding_dim
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, 1 / math.sqrt(m.in_features), generator=g)
                if m.bias is not None:
                    m.bias.normal_(0, 0.02, generator=g)
        self.model.embed_tokens.weight.normal_(0, 1, generator=g)
        # Massive activations: a few residual channels carry large values on every token (as in
        # real LLMs), image and audio tokens on channels of their own; the norms scale those
        # channels up, so each linear's input has outliers that depend on the modality.
        self.massive = torch.zeros(3, d)
        # Channels below 32: any width d >= 32 works.
        self.massive[0, [3, 17]] = torch.tensor([40.0, -25.0])
        self.massive[1, [3, 17, 11, 26]] = torch.tensor([40.0, -25.0, 300.0, -200.0])
        self.massive[2, [3, 17, 20, 29]] = torch.tensor([40.0, -25.0, 250.0, 180.0])
        for block in self.model.layers:
            for norm in (block.input_layernorm, block.post_attention_layernorm):
                norm.weight[[3, 17, 11, 26, 20, 29]] = torch.tensor([6.0, 5.0, 8.0, 6.0, 7.0, 5.0])
        # Image and audio features are low rank (8 and 6) and larger.
        self.visual.proj.weight.mul_(4.0)
        self.audio_tower.proj.weight.mul_(3.0)

    def embed(self, input_ids, image_features, audio_features):
        x = self.model.embed_tokens(input_ids)
        x = x.clone()
        if image_features is not None:
            x[input_ids == IMAGE_ID] = self.visual(image_features)
        if audio_features is not None:
            x[input_ids == AUDIO_ID] = self.audio_tower(audio_features)
        return x + self.massive[(input_ids == IMAGE_ID).long() + 2 * (input_ids == AUDIO_ID).long()]

    def forward(self, input_ids, image_features=None, audio_features=None):
        x = self.embed(input_ids, image_features, audio_features)
        for block in self.model.layers:
            x = block(x)
        return x


def make_batch(seed, seq=160, images=48, audio=32):
    """One prompt [1, seq]: text, an image span, more text, an audio span, text (text only with
    images = audio = 0)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 480, (1, seq), generator=g)
    if images == 0 and audio == 0:
        return {"input_ids": ids}
    a = int(torch.randint(seq // 20, seq // 7, (1,), generator=g))
    ids[0, a:a + images] = IMAGE_ID
    b = a + images + seq // 10
    if b + audio >= seq:
        raise ValueError(f"make_batch: {images} image and {audio} audio tokens do not fit {seq}")
    ids[0, b:b + audio] = AUDIO_ID
    img = torch.randn(images, 8, generator=g)
    aud = torch.randn(audio, 6, generator=g)
    return {"input_ids": ids, "image_features": img, "audio_features": aud}


MODALITIES = ["text", "image", "audio"]
METHODS = {  # the report's methods as recipe settings
    "smoothquant": dict(method="smoothquant", rank=0),
    "mas": dict(method="mas", rank=0),
    "masquant": dict(method="mas", rank=0.25, min_rank=0),
}


def modality_of(batch):
    ids = batch["input_ids"].reshape(-1)
    out = torch.zeros_like(ids)
    out[ids == IMAGE_ID], out[ids == AUDIO_ID] = 1, 2
    return out


def sqnr_by_modality(model, reference_outputs, batches):
    """Per-modality SQNR (dB) of the last block's hidden states against the float model's."""
    signal, noise = np.zeros(3), np.zeros(3)
    with torch.no_grad():
        for batch, ref in zip(batches, reference_outputs):
            out = model(**batch).reshape(-1, ref.shape[-1]).double()
            ref = ref.reshape(-1, ref.shape[-1]).double()
            mod = modality_of(batch)
            for m in range(3):
                sel = mod == m
                signal[m] += float((ref[sel] ** 2).sum())
                noise[m] += float(((ref[sel] - out[sel]) ** 2).sum())
    return {name: 10 * math.log10(signal[m] / noise[m]) if noise[m] > 0 else float("inf")
            for m, name in enumerate(MODALITIES) if signal[m] > 0}


def evaluate(model, reference, evals, text_reference, text_evals):
    """SQNR per modality on the multimodal prompts, and on text-only prompts ("text_only"):
    there no text token attends to an image or audio token, so the text score measures the
    text path alone."""
    row = sqnr_by_modality(model, reference, evals)
    row["text_only"] = sqnr_by_modality(model, text_reference, text_evals)["text"]
    return row


def run(blocks=3, sequential=False, calibration=8, evaluation=4, threads=1):
    model = MultimodalQwen2(blocks=blocks).eval()
    calib = [make_batch(1000 + i) for i in range(calibration)]
    evals = [make_batch(2000 + i) for i in range(evaluation)]
    text_evals = [make_batch(3000 + i, images=0, audio=0) for i in range(evaluation)]
    with torch.no_grad():
        reference = [model(**b) for b in evals]
        text_reference = [model(**b) for b in text_evals]
    scores = (reference, evals, text_reference, text_evals)

    # 1. Capture: hooks on the decoder's linears, modality from the placeholder ids.
    with mqt.capture(model, special_tokens=SPECIAL_TOKENS, recipe="llama",
                     gram="non_reference", threads=threads) as cap:
        with torch.no_grad():
            for batch in calib:
                model(**batch)

    results = {"float": evaluate(model, *scores)}
    for bits in (8, 4):
        for method, settings in METHODS.items():
            quantized = copy.deepcopy(model)
            tokens = mqt.TokenModalities(quantized, SPECIAL_TOKENS)
            layers = mqt.quantize_linears(model, cap, threads=threads, wbits=bits, abits=8,
                                          learn_steps=0, **settings)
            mqt.replace_linears(quantized, {n: c.linear for n, c in layers.items()}, tokens)
            results[f"{method}_w{bits}a8"] = evaluate(quantized, *scores)
        if sequential:
            quantized = copy.deepcopy(model)
            mqt.calibrate_sequential(quantized, calib, special_tokens=SPECIAL_TOKENS,
                                     recipe="llama", threads=threads, wbits=bits, abits=8,
                                     learn_steps=0, **METHODS["masquant"])
            results[f"masquant_sequential_w{bits}a8"] = evaluate(quantized, *scores)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--sequential", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    results = run(args.blocks, args.sequential, threads=args.threads)
    columns = MODALITIES + ["text_only"]
    print(f"{'last-block hidden SQNR (dB)':32s}" + "".join(f"{m:>10s}" for m in columns))
    for name, row in results.items():
        print(f"{name:32s}" + "".join(f"{row[m]:10.2f}" for m in columns))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
