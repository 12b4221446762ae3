"""masquant: MASQuant quantization of multimodal LLMs, from Python.

The C++ library through numpy: per-modality statistics (Statistics, statistics files),
calibrate() from tokens or statistics, the deployable QuantizedLinear, and whole-checkpoint
quantization (quantize_checkpoint, QuantizedCheckpoint). PyTorch capture and layers live in
masquant.torch, imported only when used. Errors of the C++ library are masquant.Error
subclasses carrying its messages; most are also ValueError. See docs/python.md.
"""

import json as _json
import os as _os

from ._masquant import (  # noqa: F401  (re-exported)
    Calibration,
    CopyWarning,
    Error,
    FileError,
    FormatError,
    InvalidArgument,
    NonFinite,
    NotSupported,
    NumericalIssue,
    OutOfRange,
    Overflow,
    QuantizedCheckpoint,
    QuantizedLinear,
    ShapeMismatch,
    Statistics,
    __version__,
    cpu_isa,
    merge_statistics_files,
    pattern_matches,
    recipe_presets,
    save_tensors,
)
from . import _masquant

__all__ = [
    "Calibration", "CopyWarning", "Error", "FileError", "FormatError", "InvalidArgument",
    "NonFinite", "NotSupported", "NumericalIssue", "OutOfRange", "Overflow",
    "QuantizedCheckpoint", "QuantizedLinear", "ShapeMismatch", "Statistics", "calibrate",
    "cpu_isa", "load_recipe", "merge_statistics_files", "pattern_matches", "quantize_checkpoint",
    "recipe_presets", "save_tensors",
]


def calibrate(weight, bias=None, *, tokens=None, ids=None, statistics=None, input="",
              modalities=None, threads=1, report=True, **settings):
    """Calibrates one linear; returns a Calibration (.linear, .report, .merged_factor).

    weight: float32 [d_out, d_in]; bias: float32 [d_out] or None.
    From tokens: tokens float32 [n, d_in] with ids (integers [n], the modality of each token).
    From statistics: statistics= a Statistics, input= the record's name (may be left out when
    the set holds one record); tokens/ids, when given, are the sample that the alpha search,
    learned MAS and the report run on.
    modalities: names in id order, reference first (from statistics: must equal theirs).
    settings: the recipe settings — wbits, abits, method ("rtn", "smoothquant", "mas"), alpha
    (a number or "auto"), learn_steps, learning_rate, batch_tokens, rank, min_rank, whiten,
    damping, quantized_compensation, seed.
    threads: 1 runs on the calling thread, 0 on every CPU. Runs without the GIL.
    """
    return _masquant._calibrate(weight, bias, tokens, ids, statistics, input,
                                list(modalities or []), threads, report, settings)


def load_recipe(recipe=None, model=None):
    """A recipe as a dict: a preset name, a recipe file's path, a dict (validated), or None for
    the preset of model/config.json's model_type."""
    if recipe is None:
        if model is None:
            raise TypeError("load_recipe: give a recipe or the model directory")
        text = _masquant._recipe("auto", "", _os.fspath(model))
    elif isinstance(recipe, dict):
        text = _masquant._recipe("json", _json.dumps(recipe))
    elif isinstance(recipe, str) and recipe in recipe_presets():
        text = _masquant._recipe("preset", recipe)
    elif isinstance(recipe, (str, _os.PathLike)):
        text = _masquant._recipe("file", _os.fspath(recipe))
    else:
        raise TypeError("recipe: expected a preset name, a path or a dict, got "
                        + type(recipe).__name__)
    return _json.loads(text)


def quantize_checkpoint(model, output, *, statistics=(), tokens=(), inputs="", recipe=None,
                        existing="refuse", shard_size=4_000_000_000, layers=None, only=(),
                        join=False, threads=0, progress=None, **settings):
    """Quantizes a Hugging Face checkpoint directory into `output` (as `masquant quantize`).

    statistics: statistics files (as saved by Statistics.save or masquant.torch capture);
    tokens: token-sample files for what needs tokens; inputs: a raw-inputs file instead.
    recipe: a preset name, a recipe file, a dict, or None (the preset of config.json's
    model_type); settings (wbits=4, ...) override its defaults.
    existing: "refuse" (default), "resume" or "overwrite" an existing output.
    layers: (first, last) decoder blocks; only: name patterns — a part of the model, joined
    later with join=True. progress: called with a dict as each linear starts and finishes.
    Returns {"linears": {name: report}, "modalities": [...], "shards_written": n, ...}.
    Every input is checked before anything is written; the output appears atomically.
    """
    rec = load_recipe(recipe, model)
    return _masquant._quantize_checkpoint(
        _os.fspath(model), _os.fspath(output), _json.dumps(rec),
        [_os.fspath(s) for s in ([statistics] if isinstance(statistics, (str, _os.PathLike))
                                 else statistics)],
        [_os.fspath(s) for s in ([tokens] if isinstance(tokens, (str, _os.PathLike))
                                 else tokens)],
        _os.fspath(inputs), existing, int(shard_size),
        tuple(layers) if layers is not None else None, list(only), join, threads, progress,
        settings)
