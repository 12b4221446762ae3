"""masquant.torch: capture per-modality statistics from a PyTorch model, and run calibrated
layers inside it (docs/python.md).

    import masquant.torch as mqt
    with mqt.capture(model, special_tokens={"vision": [IMAGE_ID]}, recipe="llama") as cap:
        for batch in calibration_batches:
            model(batch)
    cap.save("stats.safetensors")   # read by `masquant stats merge` and quantize_checkpoint()

The modality of each token comes from the input ids the model's input embedding sees (a
forward pre-hook on it) and the special token ids of each non-text modality, as the MASQuant
reference does. Statistics accumulate in C++ from zero-copy numpy views of the linears' inputs:
no Python loop over tokens.
"""

import json
import os
import re

import torch

from . import (Statistics, QuantizedCheckpoint, QuantizedLinear, calibrate, load_recipe,
               pattern_matches)
from . import _masquant

__all__ = ["TokenModalities", "Capture", "capture", "MasquantLinear", "select_linears",
           "quantize_linears", "replace_linears", "load_quantized", "calibrate_sequential"]


def _first(module_or_name, model, what):
    if isinstance(module_or_name, torch.nn.Module):
        return module_or_name
    modules = dict(model.named_modules())
    if module_or_name not in modules:
        raise ValueError(f"{what}: the model has no module '{module_or_name}'")
    return modules[module_or_name]


def _input_embedding(model, embedding):
    if embedding is not None:
        return _first(embedding, model, "embedding")
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        module = getter()
        if isinstance(module, torch.nn.Module):
            return module
    found = [m for _, m in model.named_modules() if isinstance(m, torch.nn.Embedding)]
    if len(found) != 1:
        raise ValueError(f"the model has {len(found)} torch.nn.Embedding modules: name the one "
                         "that reads the input ids with embedding=")
    return found[0]


class TokenModalities:
    """The modality id of every token of the current forward pass, from the input ids.

    A forward pre-hook on the model's input embedding reads its input ids [batch, seq] (or
    [seq]); a token whose id is one of special_tokens[m] has modality m's id, every other token
    the reference's (0, text). Tokens whose id is in ignore_token_ids (padding) are dropped from
    capture. `ids` is the flattened uint8 tensor, in the order the linears see the tokens.
    """

    def __init__(self, model, special_tokens, modalities=None, embedding=None,
                 ignore_token_ids=()):
        if not isinstance(special_tokens, dict) or not special_tokens:
            raise TypeError("special_tokens: expected a dict {modality name: token id or ids}")
        names = list(modalities) if modalities else ["text"] + list(special_tokens)
        for name in special_tokens:
            if name not in names[1:]:
                raise ValueError(f"special_tokens: '{name}' is not a non-reference modality of "
                                 f"{names} (the first is the reference)")
        self.modalities = names
        self._tables = []
        for name, ids in special_tokens.items():
            table = torch.as_tensor([ids] if isinstance(ids, int) else list(ids), dtype=torch.long)
            if table.numel() == 0:
                raise ValueError(f"special_tokens['{name}'] is empty")
            self._tables.append((names.index(name), table))
        self._ignore = torch.as_tensor(list(ignore_token_ids), dtype=torch.long)
        self.embedding = _input_embedding(model, embedding)
        self.ids = None    # uint8 [tokens], the modality of each token of the last input
        self.keep = None   # bool [tokens] or None: tokens to capture (not padding)
        self._handle = self.embedding.register_forward_pre_hook(self._hook)

    def from_input_ids(self, input_ids):
        """Sets the modalities of the next forward pass from its input ids (what the hook does)."""
        flat = torch.as_tensor(input_ids).reshape(-1).to(torch.long).cpu()
        ids = torch.zeros(flat.shape[0], dtype=torch.uint8)
        for m, table in self._tables:
            ids[torch.isin(flat, table)] = m
        self.ids = ids
        self.keep = ~torch.isin(flat, self._ignore) if self._ignore.numel() else None

    def set(self, ids):
        """Sets the modality ids of the next forward pass directly (integers [tokens])."""
        ids = torch.as_tensor(ids).reshape(-1)
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise TypeError(f"modality ids: dtype {ids.dtype}, expected an integer dtype")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(self.modalities)):
            raise ValueError(f"modality ids: values in [{int(ids.min())}, {int(ids.max())}] but "
                             f"only {len(self.modalities)} modalities are known")
        self.ids = ids.to(torch.uint8).cpu()
        self.keep = None

    def _hook(self, module, args):
        if not args or not torch.is_tensor(args[0]) or args[0].is_floating_point():
            raise TypeError("masquant: the input embedding was called without integer input ids "
                            "(pass embedding= the module that reads them, or set the modality "
                            "ids with .set())")
        self.from_input_ids(args[0])

    def for_tokens(self, n, where):
        """The ids (and keep mask) of the current pass, checked against n tokens."""
        if self.ids is None:
            raise RuntimeError(f"masquant: {where} ran before the input embedding saw any input "
                               "ids (run the model on input ids, or set them with .set())")
        if self.ids.numel() != n:
            raise ValueError(f"masquant: {where} received {n} tokens but the last input ids "
                             f"hold {self.ids.numel()}")
        return self.ids, self.keep

    def remove(self):
        self._handle.remove()


def _rank2_weight(module):
    w = module._parameters.get("weight") if hasattr(module, "_parameters") else None
    return w is not None and w.dim() == 2


def select_linears(model, targets, ignore=()):
    """The linears a recipe's patterns select: {name: torch.nn.Linear}, in model order.

    A module is a candidate when it has a rank-2 `weight` (as a checkpoint's P.weight); a
    target matching one that is not a torch.nn.Linear is a TypeError (its input is not a
    linear's input), a target matching no linear a ValueError.
    """
    chosen, used = {}, [False] * len(targets)
    for name, module in model.named_modules():
        if not name or not _rank2_weight(module):
            continue
        hits = [i for i, p in enumerate(targets) if pattern_matches(p, name)]
        if not hits or any(pattern_matches(p, name) for p in ignore):
            continue
        if not isinstance(module, torch.nn.Linear):
            raise TypeError(f"masquant: target pattern '{targets[hits[0]]}' selects '{name}', a "
                            f"{type(module).__name__}, not a torch.nn.Linear")
        for i in hits:
            used[i] = True
        chosen[name] = module
    for i, ok in enumerate(used):
        if not ok:
            raise ValueError(f"masquant: target pattern '{targets[i]}' matches no linear of the "
                             "model")
    return chosen


def _input_keys(names, groups):
    """Each linear's statistics key: a group's members share the first member present's."""
    keys = {}
    for name in names:
        parent, _, leaf = name.rpartition(".")
        prefix = parent + "." if parent else ""
        key = name
        for group in groups:
            if leaf in group:
                key = next(prefix + m for m in group if prefix + m in names)
                break
        keys[name] = key
    return keys


class Capture:
    """Statistics of the selected linears' inputs over the forward passes run while active.

    Use capture(); attributes: statistics (a masquant.Statistics), linears ({name: key}: each
    linear's statistics key), modalities, samples ({key: [tensor per modality]}).
    """

    def __init__(self, model, *, special_tokens=None, modalities=None, recipe="llama",
                 targets=None, ignore=None, groups=None, gram=None, sample_tokens=0,
                 ignore_token_ids=(), embedding=None, token_modalities=None, threads=1, seed=0):
        rec = load_recipe(recipe) if recipe is not None else {}
        self.recipe = rec
        targets = list(targets if targets is not None else rec.get("targets", []))
        ignore = list(ignore if ignore is not None else rec.get("ignore", []))
        groups = [list(g) for g in (groups if groups is not None else rec.get("groups", []))]
        if not targets:
            raise ValueError("masquant capture: no targets (give targets= or a recipe)")
        if sample_tokens < 0:
            raise ValueError(f"sample_tokens must be >= 0, got {sample_tokens}")
        linears = select_linears(model, targets, ignore)
        self.linears = _input_keys(list(linears), groups)
        if token_modalities is None:
            if special_tokens is None:
                raise TypeError("masquant capture: give special_tokens= (or token_modalities=)")
            token_modalities = TokenModalities(model, special_tokens, modalities, embedding,
                                               ignore_token_ids)
            self._own_modalities = True
        else:
            self._own_modalities = False
        self.tokens = token_modalities
        self.modalities = token_modalities.modalities
        try:
            self._prepare(rec, gram, sample_tokens, threads, seed)
        except BaseException:
            if self._own_modalities:  # an error registers nothing
                token_modalities.remove()
            raise
        self._handles = []
        for key in sorted(set(self.linears.values())):
            module = linears[key]
            self._handles.append(module.register_forward_pre_hook(
                lambda mod, args, key=key: self._hook(key, mod, args)))

    def _prepare(self, rec, gram, sample_tokens, threads, seed):
        """Statistics, sampling and each input's Gram mode; raises before any linear is hooked."""
        rec_modalities = rec.get("modalities") or []
        if rec_modalities and rec_modalities != self.modalities:
            raise ValueError(f"masquant capture: the recipe's modalities {rec_modalities} differ "
                             f"from {self.modalities}")
        self.statistics = Statistics(self.modalities, threads)
        self.sample_tokens = int(sample_tokens)
        self.samples = {}
        self._generator = torch.Generator().manual_seed(seed)
        self._gram = {}
        rec_json = json.dumps(rec) if rec else None
        order = ["none", "non_reference", "all"]
        for name, key in self.linears.items():
            if gram is not None:
                mode = gram
            elif rec_json is not None:
                compensated = json.loads(_masquant._linear_settings(rec_json, name))["rank"] > 0
                mode = "non_reference" if compensated else "none"
            else:
                mode = "non_reference"
            # A shared input keeps what the most demanding of its linears needs.
            if mode not in order:
                raise ValueError(f"gram: '{mode}' is not none, non_reference or all")
            if order.index(mode) >= order.index(self._gram.get(key, "none")):
                self._gram[key] = mode

    def _hook(self, key, module, args):
        x = args[0]
        if x.shape[-1] != module.in_features:
            raise ValueError(f"masquant capture: '{key}' received {x.shape[-1]} channels, the "
                             f"linear has {module.in_features}")
        x2 = x.detach().reshape(-1, x.shape[-1])
        ids, keep = self.tokens.for_tokens(x2.shape[0], f"'{key}'")
        if keep is not None:
            x2, ids = x2[keep.to(x2.device)], ids[keep]
        x2 = x2.to(device="cpu", dtype=torch.float32).contiguous()
        # Views of the tensors: C++ reads them in place, without the GIL.
        self.statistics.add(key, x2.numpy(), ids.numpy(), gram=self._gram[key])
        if self.sample_tokens:
            self._subsample(key, x2, ids)

    def _subsample(self, key, x, ids):
        # Bottom-k by random key: a uniform sample without replacement over all tokens seen.
        kept = self.samples.setdefault(key, [None] * len(self.modalities))
        for m in range(len(self.modalities)):
            rows = x[ids == m]
            if rows.shape[0] == 0:
                continue
            keys = torch.rand(rows.shape[0], generator=self._generator)
            if kept[m] is not None:
                rows = torch.cat([kept[m][0], rows])
                keys = torch.cat([kept[m][1], keys])
            if keys.shape[0] > self.sample_tokens:
                pick = torch.topk(keys, self.sample_tokens, largest=False).indices
                rows, keys = rows[pick], keys[pick]
            kept[m] = (rows.clone(), keys)

    def sample(self, key):
        """The token sample of an input: (tokens float32 [n, d], ids uint8 [n]) as numpy."""
        kept = self.samples.get(key)
        if kept is None:
            return None
        xs = [k[0] for k in kept if k is not None]
        ids = [torch.full((k[0].shape[0],), m, dtype=torch.uint8)
               for m, k in enumerate(kept) if k is not None]
        return torch.cat(xs).numpy(), torch.cat(ids).numpy()

    def save(self, path, sample_path=None):
        """Writes the statistics file (and, with sample_path, the token sample as
        K.inputs.<modality> tensors, for quantize_checkpoint(tokens=...)). Atomic."""
        if not len(self.statistics):
            raise ValueError("masquant capture: no statistics to save (no forward pass ran "
                             "while capturing)")
        if sample_path is not None:
            if not self.samples:
                raise ValueError("masquant capture: no token sample (capture with "
                                 "sample_tokens=N)")
            tensors = {}
            for key, kept in self.samples.items():
                for m, k in enumerate(kept):
                    if k is not None:
                        tensors[f"{key}.inputs.{self.modalities[m]}"] = k[0].numpy()
            _masquant.save_tensors(os.fspath(sample_path), tensors)
        self.statistics.save(os.fspath(path))

    def remove(self):
        """Removes the hooks (the statistics stay)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        if self._own_modalities:
            self.tokens.remove()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


def capture(model, **kwargs):
    """A Capture of `model` (see Capture; use as a context manager)."""
    return Capture(model, **kwargs)


class MasquantLinear(torch.nn.Module):
    """A calibrated layer (masquant.QuantizedLinear) in a PyTorch model: the deployable int8
    path on the CPU, each token routed by its modality (from a TokenModalities; without one,
    every token takes the reference path, as decode without ids does). Inference only: the
    output carries no gradient."""

    def __init__(self, layer, token_modalities=None, name=""):
        super().__init__()
        if not isinstance(layer, QuantizedLinear):
            raise TypeError(f"MasquantLinear: expected a masquant.QuantizedLinear, got "
                            f"{type(layer).__name__}")
        self.layer = layer
        self.tokens = token_modalities
        self.name = name
        self.in_features, self.out_features = layer.d_in, layer.d_out

    def forward(self, x):
        if x.shape[-1] != self.in_features:
            raise ValueError(f"MasquantLinear {self.name}: input has {x.shape[-1]} channels, the "
                             f"layer {self.in_features}")
        flat = x.detach().reshape(-1, self.in_features).to(device="cpu", dtype=torch.float32)
        ids = None
        if self.tokens is not None:
            ids = self.tokens.for_tokens(flat.shape[0], f"MasquantLinear {self.name}")[0].numpy()
        y = self.layer.forward(flat.contiguous().numpy(), ids)
        return torch.from_numpy(y).to(device=x.device, dtype=x.dtype).reshape(
            *x.shape[:-1], self.out_features)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"W{self.layer.weight_bits}A{self.layer.activation_bits}, "
                f"modalities={self.layer.modalities}")


def replace_linears(model, layers, token_modalities=None):
    """Replaces each named linear of `model` by a MasquantLinear of layers[name]."""
    modules = dict(model.named_modules())
    for name, layer in layers.items():
        if name not in modules:
            raise ValueError(f"masquant: the model has no module '{name}'")
        old = modules[name]
        if not isinstance(old, (torch.nn.Linear, MasquantLinear)):
            raise TypeError(f"masquant: '{name}' is a {type(old).__name__}, not a linear")
        if (old.in_features, old.out_features) != (layer.d_in, layer.d_out):
            raise ValueError(f"masquant: '{name}' is {old.in_features} -> {old.out_features}, "
                             f"the quantized layer {layer.d_in} -> {layer.d_out}")
        parent, _, leaf = name.rpartition(".")
        setattr(modules[parent] if parent else model, leaf,
                MasquantLinear(layer, token_modalities, name))


def load_quantized(model, checkpoint, token_modalities=None):
    """Replaces every linear a quantized checkpoint holds (a directory written by
    quantize_checkpoint, or a QuantizedCheckpoint) by its MasquantLinear; returns the names."""
    ckpt = checkpoint if isinstance(checkpoint, QuantizedCheckpoint) else \
        QuantizedCheckpoint(os.fspath(checkpoint))
    if token_modalities is not None and token_modalities.modalities != ckpt.modalities:
        raise ValueError(f"masquant: the checkpoint's modalities {ckpt.modalities} differ from "
                         f"{token_modalities.modalities}")
    replace_linears(model, {n: ckpt.linear(n) for n in ckpt.linears}, token_modalities)
    return list(ckpt.linears)


def _weights(module):
    w = module.weight.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()
    b = None
    if module.bias is not None:
        b = module.bias.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()
    return w, b


def quantize_linears(model, cap, threads=1, **settings):
    """Calibrates every linear a Capture saw, from its statistics (and its token sample, when
    it kept one), with the capture's recipe settings: settings (wbits=4, ...) override the
    recipe's defaults, its overrides still apply, as in quantize_checkpoint().
    Returns {name: masquant.Calibration}; the model is not changed (see replace_linears)."""
    rec = dict(cap.recipe or load_recipe("llama"))
    rec["defaults"] = dict(rec.get("defaults", {}), **settings)
    rec_json = json.dumps(rec)
    modules = dict(model.named_modules())
    out = {}
    for name, key in cap.linears.items():
        s = json.loads(_masquant._linear_settings(rec_json, name))
        w, b = _weights(modules[name])
        sample = cap.sample(key)
        tokens, ids = sample if sample is not None else (None, None)
        out[name] = calibrate(w, b, statistics=cap.statistics, input=key, tokens=tokens, ids=ids,
                              threads=threads, report=False, **s)
    return out


class _Stop(Exception):
    """Ends a calibration pass after the block being calibrated."""


def _blocks_of(model, blocks):
    if blocks is not None:
        return [(b, _first(b, model, "blocks")) for b in blocks]
    found = [(n, m) for n, m in model.named_modules() if re.fullmatch(r"(.*\.)?layers\.[0-9]+", n)]
    if not found:
        raise ValueError("masquant: no decoder blocks (modules named *layers.<i>); give blocks=")
    return found


def _stop_after(module, args, output):
    raise _Stop()


def _run_batch(model, forward, batch):
    if forward is not None:
        return forward(model, batch)
    return model(**batch) if isinstance(batch, dict) else model(batch)


def calibrate_sequential(model, batches, *, forward=None, special_tokens=None, blocks=None,
                         token_modalities=None, recipe="llama", threads=1, sample_tokens=0,
                         progress=None, **kwargs):
    """Sequential calibration: the linears of decoder block i are calibrated on inputs produced
    by blocks 0..i-1 already replaced by their quantized versions (the MASQuant reference and
    llm-compressor's sequential pipeline propagate quantized outputs the same way).

    batches: the calibration batches (a list: it is iterated once per block); forward(model,
    batch) runs one (default: model(batch), or model(**batch) for a dict). Each pass stops right
    after the block being calibrated. blocks: block module names in order (default: every
    module named *layers.<i>). The model's selected linears end up replaced by MasquantLinear
    modules; returns {name: masquant.Calibration}. kwargs: the settings (wbits=4, ...) and the
    Capture arguments targets, ignore, groups, modalities, gram, ignore_token_ids, embedding,
    seed. Cost: block i's passes run blocks 0..i, about n/2 full passes over the calibration
    data for n blocks instead of one (docs/python.md, "Sequential calibration").
    """
    capture_args = {k: kwargs.pop(k) for k in ("targets", "ignore", "groups", "modalities",
                                               "gram", "ignore_token_ids", "embedding", "seed")
                    if k in kwargs}
    own = token_modalities is None
    if own:
        token_modalities = TokenModalities(
            model, special_tokens, capture_args.get("modalities"), capture_args.get("embedding"),
            capture_args.get("ignore_token_ids", ()))
    rec = load_recipe(recipe) if recipe is not None else {}
    targets = capture_args.get("targets", rec.get("targets", []))
    ignore = capture_args.get("ignore", rec.get("ignore", []))
    batches = list(batches)
    results = {}
    try:
        for index, (block_name, block) in enumerate(_blocks_of(model, blocks)):
            # The selected linears of this block (select_linears checks them as capture does).
            in_block = [name for name, m in block.named_modules(prefix=block_name)
                        if _rank2_weight(m) and any(pattern_matches(p, name) for p in targets)
                        and not any(pattern_matches(p, name) for p in ignore)]
            if not in_block:
                continue
            cap = Capture(model, token_modalities=token_modalities, recipe=recipe,
                          targets=["re:" + re.escape(n) for n in in_block], ignore=[],
                          groups=capture_args.get("groups"), gram=capture_args.get("gram"),
                          sample_tokens=sample_tokens, threads=threads,
                          seed=capture_args.get("seed", 0))
            stop = block.register_forward_hook(_stop_after)
            try:
                with torch.no_grad():
                    for batch in batches:
                        try:
                            _run_batch(model, forward, batch)
                        except _Stop:
                            pass
            finally:
                stop.remove()
                cap.remove()
            done = quantize_linears(model, cap, threads=threads, **kwargs)
            replace_linears(model, {n: c.linear for n, c in done.items()}, token_modalities)
            results.update(done)
            if progress is not None:
                progress(index, block_name)
    except BaseException:
        if own:
            token_modalities.remove()
        raise
    # The TokenModalities made here stays hooked: the MasquantLinear modules route by it.
    return results
