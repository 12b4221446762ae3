// linear_file.hpp: the file contract of a calibrated layer — a quantized_linear_params stored
// under a prefix P as P.qweight, P.wscale, P.smooth.<m>, P.lowrank.<m>.L/R and P.bias.
#pragma once

#include <algorithm>
#include <masquant/error.hpp>
#include <masquant/io/safetensors_file.hpp>
#include <masquant/io/safetensors_writer.hpp>
#include <masquant/io/tensor_names.hpp>
#include <masquant/layer/linear_params.hpp>
#include <masquant/quant/detail/common.hpp>
#include <string>
#include <vector>

namespace masquant {

namespace detail {

/// P.wscale holds what calibrate() writes, the weight quantizer's Δ = clamp(absmax / qmax, 1e-5,
/// 1e4): a scale outside is no calibrated layer (3e38 made `forward` write Inf). Throws `code`
/// naming `what` (the tensor, or the field) and the element.
inline void check_wscale_range(const std::vector<float>& wscale, errc code,
                               const std::string& what) {
  for (std::size_t i = 0; i < wscale.size(); ++i)
    MASQUANT_CHECK(wscale[i] >= quant_min_scale && wscale[i] <= quant_max_scale, code, what,
                   " element ", i, " = ", wscale[i], " is outside [", quant_min_scale, ", ",
                   quant_max_scale, "], the range of the weight quantizer's scales");
}

}  // namespace detail

/// Adds a calibrated layer's tensors under `prefix` (docs/file-format.md, "masquant's file
/// contract"): P.qweight I8 [d_out, d_in] (4-bit levels stored one per byte), P.wscale F32 [d_out],
/// P.smooth.<m> F32 [d_in] for every modality, P.lowrank.<m>.L F32 [d_in, r] and
/// P.lowrank.<m>.R F32 [r, d_out] for every modality with a correction, P.bias F32 [d_out] when
/// present. Modality names are params.modality_names (or "0", "1", ...). The bit widths belong
/// in the file's __metadata__ (wbits, abits, as `masquant calibrate` writes). Validates first:
/// throws as quantized_linear_params::validate(), or errc::invalid_argument for a name the
/// writer already holds, an empty prefix, a modality name that is not is_modality_name(), or a
/// wscale outside [1e-5, 1e4] (the range of calibrate()'s scales, which load_linear() holds
/// files to), with nothing added.
inline void add_linear(safetensors_writer& out, const std::string& prefix,
                       const quantized_linear_params& p) {
  p.validate();
  // Names the grammar of tensor names reads back as this layer's (tensor_names.hpp).
  MASQUANT_CHECK(!prefix.empty(), errc::invalid_argument, "add_linear: empty layer prefix");
  for (index_t m = 0; m < p.modalities(); ++m)
    MASQUANT_CHECK(is_modality_name(p.modality_name(m)), errc::invalid_argument,
                   "add_linear: modality name '", p.modality_name(m),
                   "' is empty, holds '.' or is one of weight, bias, qweight, wscale, inputs, "
                   "outputs, smooth, lowrank (tensor names would not read back)");
  detail::check_wscale_range(p.wscale, errc::invalid_argument, "add_linear: wscale");
  std::vector<std::string> names;
  names.push_back(prefix + ".qweight");
  names.push_back(prefix + ".wscale");
  if (!p.bias.empty()) names.push_back(prefix + ".bias");
  for (index_t m = 0; m < p.modalities(); ++m) {
    names.push_back(prefix + ".smooth." + p.modality_name(m));
    if (p.has_lowrank(m)) {
      names.push_back(prefix + ".lowrank." + p.modality_name(m) + ".L");
      names.push_back(prefix + ".lowrank." + p.modality_name(m) + ".R");
    }
  }
  for (const auto& n : names)
    MASQUANT_CHECK(!out.has(n), errc::invalid_argument, "add_linear: tensor '", n,
                   "' was already added");
  out.add(prefix + ".qweight", matrix_view<const std::int8_t>(p.qweight.data(), p.d_out, p.d_in));
  out.add(prefix + ".wscale", vector_view<const float>(p.wscale.data(), p.d_out));
  if (!p.bias.empty()) out.add(prefix + ".bias", vector_view<const float>(p.bias.data(), p.d_out));
  for (index_t m = 0; m < p.modalities(); ++m) {
    const auto& s = p.smooth[static_cast<std::size_t>(m)];
    out.add(prefix + ".smooth." + p.modality_name(m), vector_view<const float>(s.data(), p.d_in));
    if (!p.has_lowrank(m)) continue;
    const auto& f = p.lowrank[static_cast<std::size_t>(m)];
    out.add(prefix + ".lowrank." + p.modality_name(m) + ".L", view_of(f.L));
    out.add(prefix + ".lowrank." + p.modality_name(m) + ".R", view_of(f.R));
  }
}

/// What loading a layer needs from its file's __metadata__ (the writer's caller sets it, as
/// `masquant calibrate` does): "wbits" and "abits" (decimal bit widths) and "reference" (the
/// reference modality's name).
struct linear_file_metadata {
  int weight_bits = 0;
  int activation_bits = 0;
  std::string reference;
};

/// Reads wbits, abits and reference from the file's __metadata__. Throws errc::format_error
/// naming the file and the key that is missing, or malformed (a bit width that is not 1 to 3
/// decimal digits, an empty reference); the bit widths' ranges are checked by load_linear.
inline linear_file_metadata read_linear_metadata(const safetensors_file& file) {
  const auto& meta = file.metadata();
  const auto value = [&](const char* key) -> const std::string& {
    const auto it = meta.find(key);
    MASQUANT_CHECK(it != meta.end(), errc::format_error, file.source(), ": __metadata__ has no '",
                   key, "' (load_linear needs wbits, abits and reference)");
    return it->second;
  };
  const auto bits = [&](const char* key) {
    const std::string& v = value(key);
    const bool digits =
        !v.empty() && v.size() <= 3 && v.find_first_not_of("0123456789") == std::string::npos;
    MASQUANT_CHECK(digits, errc::format_error, file.source(), ": __metadata__ '", key, "' is '", v,
                   "', expected a bit width");
    return std::stoi(v);
  };
  linear_file_metadata m;
  m.weight_bits = bits("wbits");
  m.activation_bits = bits("abits");
  m.reference = value("reference");
  MASQUANT_CHECK(!m.reference.empty(), errc::format_error, file.source(),
                 ": __metadata__ has no 'reference' (it is empty)");
  return m;
}

/// Reads the calibrated layer stored under `prefix`. Modalities are those with a P.smooth.<m>
/// tensor: `reference` first (id 0), the others in name order (ids 1, 2, ...). Float tensors
/// may be F32, F16, BF16 or F64 (converted to float); P.qweight must be I8.
/// weight_bits, activation_bits: from the file's __metadata__ (wbits, abits).
/// Throws errc::format_error naming the tensor (missing, wrong rank or shape, no smoothing of
/// the reference modality, a correction of the reference modality, L without R, a wscale
/// element outside [1e-5, 1e4], the weight quantizer's clamp of Δ: no calibrated layer has one),
/// and what quantized_linear_params::validate() reports, prefixed with the file and the layer
/// prefix. (No bound on L and R follows from the file alone; quantized_linear::forward refuses
/// outputs that overflow float.)
inline quantized_linear_params load_linear(const safetensors_file& file, const std::string& prefix,
                                           const std::vector<std::string>& modalities,
                                           int weight_bits, int activation_bits);

inline quantized_linear_params load_linear(const safetensors_file& file, const std::string& prefix,
                                           const std::string& reference, int weight_bits,
                                           int activation_bits) {
  // Modalities: every P.smooth.<m>, reference first, the others in name order. (By the grammar
  // of tensor names, P.smooth.weight is the weight of a layer "P.smooth", and P.smooth.x.weight
  // of "P.smooth.x".)
  const std::string smooth_prefix = prefix + ".smooth.";
  std::vector<std::string> names;
  for (const tensor_info* t : file.children(smooth_prefix).tensors)  // in name order
    if (is_modality_name(std::string_view(t->name).substr(smooth_prefix.size())))
      names.push_back(t->name.substr(smooth_prefix.size()));
  // Bounded before anything is loaded (and before the searches below, linear in it).
  MASQUANT_CHECK(names.size() <= 256, errc::format_error, file.source(), ": layer '", prefix,
                 "' has ", names.size(), " modalities (tensors ", smooth_prefix,
                 "<m>), at most 256");
  const auto ref = std::find(names.begin(), names.end(), reference);
  MASQUANT_CHECK(ref != names.end(), errc::format_error, file.source(), ": missing tensor '",
                 smooth_prefix, reference, "' (the reference modality's smoothing)");
  std::rotate(names.begin(), ref, ref + 1);
  return load_linear(file, prefix, names, weight_bits, activation_bits);
}

/// load_linear() with the modalities given, in id order (modalities[0] is the reference): every
/// one must have its P.smooth.<m> (a missing one is a format error naming it, its id and the
/// layer's modalities); a P.smooth.<m> or P.lowrank.<m> of a modality not listed is a format
/// error naming the tensor.
inline quantized_linear_params load_linear(const safetensors_file& file, const std::string& prefix,
                                           const std::vector<std::string>& modalities,
                                           int weight_bits, int activation_bits) {
  const std::string& src = file.source();
  auto need = [&](const std::string& name) -> const tensor_info& {
    const tensor_info* t = file.find(name);
    MASQUANT_CHECK(t != nullptr, errc::format_error, src, ": missing tensor '", name, "'");
    return *t;
  };
  auto check_shape = [&](const tensor_info& t, index_t rows, index_t cols, bool vector) {
    const bool ok = vector ? (t.shape.rank() == 1 && t.shape[0] == cols)
                           : (t.shape.rank() == 2 && t.shape[0] == rows && t.shape[1] == cols);
    if (ok) return;
    if (vector)
      raise(errc::format_error,
            detail::cat(src, ": tensor '", t.name, "' is ", t.shape, ", expected [", cols, "]"));
    raise(errc::format_error, detail::cat(src, ": tensor '", t.name, "' is ", t.shape,
                                          ", expected [", rows, ", ", cols, "]"));
  };

  quantized_linear_params p;
  p.weight_bits = weight_bits;
  p.activation_bits = activation_bits;
  const tensor_info& qw = need(prefix + ".qweight");
  MASQUANT_CHECK(qw.shape.rank() == 2, errc::format_error, src, ": tensor '", qw.name, "' is ",
                 qw.shape, ", expected [d_out, d_in]");
  p.d_out = qw.shape[0];
  p.d_in = qw.shape[1];
  p.qweight = file.load<std::int8_t>(qw.name).values();

  const tensor_info& ws = need(prefix + ".wscale");
  check_shape(ws, 1, p.d_out, true);
  p.wscale = file.load_f32(ws.name).values();
  if (const tensor_info* b = file.find(prefix + ".bias")) {
    check_shape(*b, 1, p.d_out, true);
    p.bias = file.load_f32(b->name).values();
  }

  const std::string smooth_prefix = prefix + ".smooth.";
  const std::vector<std::string>& names = modalities;
  MASQUANT_CHECK(!names.empty() && names.size() <= 256, errc::invalid_argument, src, ": layer '",
                 prefix, "': ", names.size(), " modalities given (1 to 256)");
  const std::string& reference = names.front();
  for (const tensor_info* t : file.children(smooth_prefix).tensors) {
    const std::string m = t->name.substr(smooth_prefix.size());
    MASQUANT_CHECK(!is_modality_name(m) || std::find(names.begin(), names.end(), m) != names.end(),
                   errc::format_error, src, ": tensor '", t->name,
                   "' smooths a modality the layer is not loaded with");
  }
  p.modality_names = names;
  for (std::size_t id = 0; id < names.size(); ++id) {
    const std::string& m = names[id];
    if (file.find(smooth_prefix + m) == nullptr) {
      std::string known;
      for (const tensor_info* t : file.children(smooth_prefix).tensors)
        known += (known.empty() ? "" : ", ") + t->name.substr(smooth_prefix.size());
      raise(errc::format_error,
            detail::cat(src, ": missing tensor '", smooth_prefix, m, "': modality '", m, "' (id ",
                        id, " of the order given) is not one of the layer's (",
                        known.empty() ? "none" : known, ")"));
    }
    const tensor_info& s = need(smooth_prefix + m);
    check_shape(s, 1, p.d_in, true);
    p.smooth.push_back(file.load_f32(s.name).values());
  }

  p.lowrank.resize(names.size());
  const std::string lowrank_prefix = prefix + ".lowrank.";
  // Every P.lowrank.<m>.L or .R must belong to a modality with P.smooth.<m> other than the
  // reference. (Other names under P.lowrank. belong to other layers, or to none.)
  for (const std::string& m : file.children(lowrank_prefix).groups) {
    const tensor_info* t = file.find(lowrank_prefix + m + ".L");
    if (t == nullptr) t = file.find(lowrank_prefix + m + ".R");
    if (t == nullptr || !is_modality_name(m)) continue;
    const auto it = std::find(names.begin(), names.end(), m);
    MASQUANT_CHECK(it != names.end(), errc::format_error, src, ": tensor '", t->name,
                   "' is not P.lowrank.<m>.L or .R of a modality with P.smooth.<m>");
    MASQUANT_CHECK(it != names.begin(), errc::format_error, src, ": tensor '", t->name,
                   "' corrects the reference modality '", reference, "', which has no correction");
  }
  for (std::size_t m = 1; m < names.size(); ++m) {
    const tensor_info* L = file.find(lowrank_prefix + names[m] + ".L");
    const tensor_info* R = file.find(lowrank_prefix + names[m] + ".R");
    if (!L && !R) continue;
    MASQUANT_CHECK(L && R, errc::format_error, src, ": tensor '", lowrank_prefix, names[m],
                   L ? ".R" : ".L", "' is missing (L and R come together)");
    MASQUANT_CHECK(L->shape.rank() == 2 && L->shape[0] == p.d_in && L->shape[1] >= 1,
                   errc::format_error, src, ": tensor '", L->name, "' is ", L->shape,
                   ", expected [", p.d_in, ", r]");
    check_shape(*R, L->shape[1], p.d_out, false);
    const auto l = file.load_f32(L->name);
    const auto r = file.load_f32(R->name);
    auto& f = p.lowrank[m];
    f.L = as_eigen(l.matrix());
    f.R = as_eigen(r.matrix());
  }
  // Name the file and layer: validate() knows neither.
  detail::with_context(detail::cat(src, ": layer '", prefix, "'"), [&] { p.validate(); });
  detail::check_wscale_range(p.wscale, errc::format_error,
                             detail::cat(src, ": tensor '", ws.name, "'"));
  return p;
}

/// load_linear() with the bit widths and the reference modality from the file's __metadata__
/// (read_linear_metadata: a missing key is a format error naming it). Ids: the reference 0, the
/// others in name order — give the engine's order instead (the overload below) unless the engine
/// maps its ids through params().modality_names.
inline quantized_linear_params load_linear(const safetensors_file& file,
                                           const std::string& prefix) {
  const linear_file_metadata meta = read_linear_metadata(file);
  return load_linear(file, prefix, meta.reference, meta.weight_bits, meta.activation_bits);
}

/// load_linear() in the engine's modality order: engine_modalities[m] gets id m, so the engine's
/// ids go to forward unchanged; bit widths from the file's __metadata__. engine_modalities[0]
/// must be the file's reference modality, and the engine and the layer must know the same
/// modalities: otherwise errc::invalid_argument naming the modality that cannot be mapped (a
/// token carrying its id would get another modality's smoothing and correction).
///
/// Example (the engine numbers text 0, vision 1, audio 2; the file may list them in any order):
/// \code
///   const masquant::safetensors_file file("model.safetensors");
///   masquant::quantized_linear q_proj(
///       masquant::load_linear(file, "layers.0.q_proj", {"text", "vision", "audio"}));
/// \endcode
inline quantized_linear_params load_linear(const safetensors_file& file, const std::string& prefix,
                                           const std::vector<std::string>& engine_modalities) {
  const linear_file_metadata meta = read_linear_metadata(file);
  const std::string& src = file.source();
  MASQUANT_CHECK(!engine_modalities.empty(), errc::invalid_argument, src, ": layer '", prefix,
                 "': no modalities given");
  MASQUANT_CHECK(engine_modalities.front() == meta.reference, errc::invalid_argument, src,
                 ": layer '", prefix, "': the engine's modality 0 is '", engine_modalities.front(),
                 "' but the file's reference modality is '", meta.reference,
                 "' (id 0 takes the reference path: list it first)");
  const std::string smooth_prefix = prefix + ".smooth.";
  std::string engine_names, layer_names;
  for (const auto& m : engine_modalities) engine_names += (engine_names.empty() ? "" : ", ") + m;
  for (const tensor_info* t : file.children(smooth_prefix).tensors) {
    const std::string m = t->name.substr(smooth_prefix.size());
    if (!is_modality_name(m)) continue;
    layer_names += (layer_names.empty() ? "" : ", ") + m;
    MASQUANT_CHECK(
        std::find(engine_modalities.begin(), engine_modalities.end(), m) != engine_modalities.end(),
        errc::invalid_argument, src, ": layer '", prefix, "' was calibrated for modality '", m,
        "', which the engine's order does not list (", engine_names, ")");
  }
  for (std::size_t id = 0; id < engine_modalities.size(); ++id)
    MASQUANT_CHECK(file.find(smooth_prefix + engine_modalities[id]) != nullptr,
                   errc::invalid_argument, src, ": layer '", prefix, "' has no modality '",
                   engine_modalities[id], "' (the engine's id ", id, "): it was calibrated for ",
                   layer_names.empty() ? "none" : layer_names);
  return load_linear(file, prefix, engine_modalities, meta.weight_bits, meta.activation_bits);
}

}  // namespace masquant
