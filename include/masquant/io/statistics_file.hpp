// statistics_file.hpp: statistics sets on disk — one safetensors file holds the per-modality
// statistics of many inputs by name; records load one at a time; files of shards merge.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <masquant/error.hpp>
#include <masquant/io/safetensors_file.hpp>
#include <masquant/io/safetensors_stream_writer.hpp>
#include <masquant/stats/statistics_set.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace masquant {

/// "format" metadata value of a statistics file.
inline constexpr const char* statistics_file_format = "masquant-statistics";
/// Version of the statistics file layout written (and the only one read).
inline constexpr int statistics_file_version = 1;

namespace detail {

// The layout (docs/statistics.md, "Statistics files"): metadata format, version and modalities
// ("text,vision,audio", id order); per input K and modality m the tensors K.m.count (I64 []),
// K.m.min, K.m.max, K.m.mean, K.m.m2 (F64 [C]: the accumulator's state, empty = +inf, -inf, 0, 0)
// and, when the Gram matrix is kept, K.m.gram (F64 [C(C+1)/2]: the upper triangle column by
// column).
struct statistics_file_codec {
  static constexpr const char* fields[6] = {"count", "min", "max", "mean", "m2", "gram"};

  static std::string tensor(const std::string& input, const std::string& modality, int field) {
    return cat(input, '.', modality, '.', fields[field]);
  }

  // The tensors of one record of c channels; gram[m]: modality m keeps a Gram matrix.
  static std::vector<tensor_declaration> declarations(const std::string& input,
                                                      const std::vector<std::string>& names,
                                                      index_t c, const std::vector<bool>& gram) {
    std::vector<tensor_declaration> out;
    for (std::size_t m = 0; m < names.size(); ++m) {
      out.push_back({tensor(input, names[m], 0), dtype::i64, tensor_shape{}});
      for (int f = 1; f <= 4; ++f) out.push_back({tensor(input, names[m], f), dtype::f64, {c}});
      if (gram[m]) out.push_back({tensor(input, names[m], 5), dtype::f64, {c * (c + 1) / 2}});
    }
    return out;
  }

  static std::vector<bool> gram_flags(const modality_stats& s) {
    std::vector<bool> out;
    for (index_t m = 0; m < s.modalities(); ++m)
      out.push_back(s[static_cast<modality_id>(m)].has_gram());
    return out;
  }

  static void write(safetensors_stream_writer& out, const std::string& input,
                    const std::vector<std::string>& names, const modality_stats& s) {
    const index_t c = s.channels();
    for (index_t m = 0; m < s.modalities(); ++m) {
      const channel_stats& cs = s[static_cast<modality_id>(m)];
      const std::string& name = names[std::size_t(m)];
      const std::int64_t count = cs.count_;
      out.write(tensor(input, name, 0), vector_view<const std::int64_t>(&count, 1));
      for (int f = 1; f <= 4; ++f)
        out.write(tensor(input, name, f),
                  vector_view<const double>(cs.state_.data() + (f - 1) * c, c));
      if (!cs.has_gram()) continue;
      std::vector<double> packed;
      packed.reserve(static_cast<std::size_t>(c * (c + 1) / 2));
      for (index_t j = 0; j < c; ++j)
        packed.insert(packed.end(), cs.gram_.data() + j * c, cs.gram_.data() + j * c + j + 1);
      out.write(tensor(input, name, 5),
                vector_view<const double>(packed.data(), static_cast<index_t>(packed.size())));
    }
  }

  // Restores one modality's accumulator, checking every value (errors name tensor and element).
  static channel_stats read(const safetensors_file& f, const std::string& input,
                            const std::string& name, index_t c, bool gram) {
    const std::string& src = f.source();
    const auto count = f.view<std::int64_t>(tensor(input, name, 0)).data()[0];
    MASQUANT_CHECK(count >= 0, errc::format_error, src, ": tensor '", tensor(input, name, 0),
                   "' holds a negative token count ", count);
    channel_stats s(c, gram);
    s.count_ = count;
    for (int f_ = 1; f_ <= 4; ++f_) {
      const auto v = f.view<double>(tensor(input, name, f_));
      std::copy(v.data(), v.data() + c, s.state_.begin() + (f_ - 1) * c);
    }
    const double* st = s.state_.data();
    for (index_t j = 0; j < c; ++j) {
      const int bad = invalid_moment(count, st[j], st[c + j], st[2 * c + j], st[3 * c + j]);
      MASQUANT_CHECK(bad < 0, errc::format_error, src, ": tensor '", tensor(input, name, bad + 1),
                     "' element ", j, " = ", st[bad * c + j], " is not a valid ",
                     moment_field_names[bad], " (min ", st[j], ", max ", st[c + j], ", ", count,
                     " tokens)");
    }
    if (gram) {
      const auto g = f.view<double>(tensor(input, name, 5));
      const double* p = g.data();
      for (index_t j = 0; j < c; ++j)
        for (index_t i = 0; i <= j; ++i, ++p) {
          MASQUANT_CHECK(std::isfinite(*p) && !(i == j && *p < 0) && !(count == 0 && *p != 0),
                         errc::format_error, src, ": tensor '", tensor(input, name, 5),
                         "' element ", p - g.data(), " (Gram entry ", i, ", ", j, ") = ", *p,
                         " is not a valid Gram value");
          s.gram_(i, j) = *p;
        }
    }
    return s;
  }
};

}  // namespace detail

/// Writes a statistics set to `path` (a safetensors file, see docs/statistics.md), atomically:
/// `path` is the old file or the complete new one. Throws errc::invalid_argument for a set
/// without modalities, errc::io_error naming the path.
///
/// Example:
/// \code
///   masquant::save_statistics(set, "stats-rank0.safetensors");
///   masquant::statistics_file f("stats-rank0.safetensors");
///   masquant::modality_stats attn = f.load("model.layers.0.self_attn.q_proj");
/// \endcode
inline void save_statistics(const statistics_set& set, const std::string& path) {
  MASQUANT_CHECK(!set.modalities().empty(), errc::invalid_argument, "save_statistics: ", path,
                 ": the set has no modalities");
  std::vector<tensor_declaration> declared;
  for (const auto& [input, s] : set.records()) {
    const auto d = detail::statistics_file_codec::declarations(
        input, set.modalities(), s.channels(), detail::statistics_file_codec::gram_flags(s));
    declared.insert(declared.end(), d.begin(), d.end());
  }
  safetensors_stream_writer out(path, std::move(declared),
                                {{"format", statistics_file_format},
                                 {"version", std::to_string(statistics_file_version)},
                                 {"modalities", statistics_set::join(set.modalities())}});
  for (const auto& [input, s] : set.records())
    detail::statistics_file_codec::write(out, input, set.modalities(), s);
  out.commit();
}

/// A statistics file, mapped and validated on opening (metadata, tensor names, dtypes and shapes);
/// a record's values are read and checked when it is loaded, one input at a time, so a file of
/// many gigabytes needs memory for one record only.
class statistics_file {
 public:
  /// Opens `path`. Throws errc::io_error, or errc::format_error naming the file and the tensor or
  /// metadata key that is not a statistics file's (wrong format or version, unknown modality or
  /// field, a record missing a field or a modality, wrong dtype or shape).
  explicit statistics_file(const std::string& path) : file_(path) {
    const std::string& src = file_.source();
    const auto& meta = file_.metadata();
    auto get = [&](const char* key) -> const std::string& {
      const auto it = meta.find(key);
      MASQUANT_CHECK(it != meta.end(), errc::format_error, src,
                     ": not a statistics file (no __metadata__ key '", key, "')");
      return it->second;
    };
    MASQUANT_CHECK(get("format") == statistics_file_format, errc::format_error, src,
                   ": not a statistics file (format '", get("format"), "', expected '",
                   statistics_file_format, "')");
    MASQUANT_CHECK(get("version") == std::to_string(statistics_file_version), errc::format_error,
                   src, ": unsupported statistics file version '", get("version"),
                   "' (this library reads ", statistics_file_version, ")");
    const std::string& list = get("modalities");
    for (std::size_t at = 0; at <= list.size();) {
      const auto comma = std::min(list.find(',', at), list.size());
      names_.push_back(list.substr(at, comma - at));
      at = comma + 1;
    }
    detail::with_context(detail::cat(src, ": __metadata__ 'modalities'"),
                         [&] { (void)modality_names(names_); });
    index();
  }

  const std::string& source() const noexcept { return file_.source(); }
  /// The modality names, in id order.
  const std::vector<std::string>& modalities() const noexcept { return names_; }
  /// Every input with a record, in name order.
  std::vector<std::string> inputs() const {
    std::vector<std::string> out;
    for (const auto& kv : records_) out.push_back(kv.first);
    return out;
  }
  bool has(std::string_view input) const { return records_.find(input) != records_.end(); }
  /// Channels of an input's record; throws errc::out_of_range naming the input and file.
  index_t channels(std::string_view input) const { return entry(input).channels; }
  /// Per modality (id order): the tokens of an input's record (reads only the counts).
  std::vector<std::int64_t> tokens(std::string_view input) const {
    (void)entry(input);
    std::vector<std::int64_t> out;
    for (const auto& name : names_)
      out.push_back(file_
                        .view<std::int64_t>(
                            detail::statistics_file_codec::tensor(std::string(input), name, 0))
                        .data()[0]);
    return out;
  }
  /// Per modality (id order): whether an input's record keeps its Gram matrix.
  const std::vector<bool>& gram_flags(std::string_view input) const { return entry(input).gram; }

  /// Loads one input's record. Throws errc::out_of_range naming the input, errc::format_error
  /// naming the tensor and element of a value no accumulator can hold.
  modality_stats load(std::string_view input) const {
    const auto& e = entry(input);
    const std::string key(input);
    std::vector<channel_stats> per;
    for (std::size_t m = 0; m < names_.size(); ++m)
      per.push_back(
          detail::statistics_file_codec::read(file_, key, names_[m], e.channels, e.gram[m]));
    return modality_stats(std::move(per));
  }

  /// Loads every record (needs memory for all of them).
  statistics_set load_all() const {
    statistics_set set(names_);
    for (const auto& kv : records_) set.insert(kv.first, load(kv.first));
    return set;
  }

 private:
  struct record_entry {
    index_t channels = -1;
    std::vector<bool> gram;
  };

  const record_entry& entry(std::string_view input) const {
    const auto it = records_.find(input);
    MASQUANT_CHECK(it != records_.end(), errc::out_of_range, source(),
                   ": no statistics for input '", input, "'");
    return it->second;
  }

  // Parses every tensor name as K.<modality>.<field> (from the right: modality names hold no
  // '.', input names may) and checks dtypes, shapes and completeness.
  void index() {
    using codec = detail::statistics_file_codec;
    const std::string& src = source();
    std::map<std::string, std::vector<std::array<bool, 6>>, std::less<>> seen;
    for (const tensor_info& t : file_.tensors()) {
      const auto last = t.name.rfind('.');
      const auto mid =
          last == std::string::npos || last == 0 ? std::string::npos : t.name.rfind('.', last - 1);
      int field = -1;
      std::size_t m = names_.size();
      if (mid != std::string::npos && mid > 0) {
        const std::string f = t.name.substr(last + 1), mod = t.name.substr(mid + 1, last - mid - 1);
        for (int k = 0; k < 6; ++k)
          if (f == codec::fields[k]) field = k;
        m = static_cast<std::size_t>(std::find(names_.begin(), names_.end(), mod) - names_.begin());
      }
      MASQUANT_CHECK(field >= 0 && m < names_.size(), errc::format_error, src, ": tensor '", t.name,
                     "' is not <input>.<modality>.<field> with a modality of the file (",
                     statistics_set::join(names_),
                     ") and a field count, min, max, mean, m2 or gram");
      const std::string input = t.name.substr(0, mid);
      auto& flags = seen[input];
      flags.resize(names_.size(), {});
      flags[m][static_cast<std::size_t>(field)] = true;
      auto& e = records_[input];
      e.gram.resize(names_.size(), false);
      const dtype want = field == 0 ? dtype::i64 : dtype::f64;
      MASQUANT_CHECK(t.type == want, errc::format_error, src, ": tensor '", t.name, "' is ", t.type,
                     ", expected ", want);
      if (field == 0) {
        MASQUANT_CHECK(t.shape.elements() == 1, errc::format_error, src, ": tensor '", t.name,
                       "' is ", t.shape, ", expected a scalar");
      } else if (field < 5) {
        MASQUANT_CHECK(t.shape.rank() == 1 && (e.channels < 0 || t.shape[0] == e.channels),
                       errc::format_error, src, ": tensor '", t.name, "' is ", t.shape,
                       ", expected [", e.channels < 0 ? t.shape.elements() : e.channels, "]");
        e.channels = t.shape[0];
      } else {
        e.gram[m] = true;
      }
    }
    for (auto& [input, e] : records_) {
      const auto& flags = seen[input];
      for (std::size_t m = 0; m < names_.size(); ++m)
        for (int f = 0; f < 5; ++f)
          MASQUANT_CHECK(flags[m][static_cast<std::size_t>(f)], errc::format_error, src,
                         ": input '", input, "' has no tensor '",
                         codec::tensor(input, names_[m], f), "'");
      for (std::size_t m = 0; m < names_.size(); ++m) {
        if (!e.gram[m]) continue;
        const tensor_info& g = file_.info(codec::tensor(input, names_[m], 5));
        const index_t c = e.channels;
        MASQUANT_CHECK(g.shape.rank() == 1 && g.shape[0] == c * (c + 1) / 2, errc::format_error,
                       src, ": tensor '", g.name, "' is ", g.shape, ", expected [", c * (c + 1) / 2,
                       "] (the upper triangle of a ", c, "x", c, " Gram matrix)");
      }
    }
  }

  safetensors_file file_;
  std::vector<std::string> names_;
  std::map<std::string, record_entry, std::less<>> records_;
};

/// Merges statistics files (shards of one capture, from several processes or machines) into
/// `output`: records of the same input merge exactly as statistics_set::merge does, in argument
/// order; one input's records are in memory at a time. `progress(i, n, input)` (optional) is
/// called before each input. Throws errc::invalid_argument naming both files when their
/// modalities differ, errc::shape_mismatch / errc::invalid_argument naming the input whose
/// records cannot merge, and what opening and loading throw; `output` is then not written.
inline void merge_statistics_files(
    const std::vector<std::string>& inputs, const std::string& output,
    const std::function<void(index_t, index_t, const std::string&)>& progress = {}) {
  MASQUANT_CHECK(!inputs.empty(), errc::invalid_argument, "merge_statistics_files: no inputs");
  std::vector<statistics_file> files;
  files.reserve(inputs.size());
  for (const auto& p : inputs) files.emplace_back(p);
  const auto& names = files.front().modalities();
  for (const auto& f : files)
    MASQUANT_CHECK(f.modalities() == names, errc::invalid_argument, f.source(), ": modalities (",
                   statistics_set::join(f.modalities()), ") differ from those of ",
                   files.front().source(), " (", statistics_set::join(names), ")");
  // Every input, and the shape its merged record will have, checked before anything is written.
  std::map<std::string, std::pair<index_t, std::vector<bool>>> plan;
  for (const auto& f : files)
    for (const auto& input : f.inputs()) {
      const std::vector<bool> gram = f.gram_flags(input);
      const auto [it, fresh] = plan.emplace(input, std::make_pair(f.channels(input), gram));
      if (fresh) continue;
      MASQUANT_CHECK(it->second.first == f.channels(input), errc::shape_mismatch, f.source(),
                     ": input '", input, "' has ", f.channels(input), " channels, ",
                     it->second.first, " in an earlier file");
      MASQUANT_CHECK(it->second.second == gram, errc::invalid_argument, f.source(), ": input '",
                     input, "' keeps Gram matrices for other modalities than in an earlier file");
    }
  std::vector<tensor_declaration> declared;
  for (const auto& [input, shape] : plan) {
    const auto d =
        detail::statistics_file_codec::declarations(input, names, shape.first, shape.second);
    declared.insert(declared.end(), d.begin(), d.end());
  }
  safetensors_stream_writer out(output, std::move(declared),
                                {{"format", statistics_file_format},
                                 {"version", std::to_string(statistics_file_version)},
                                 {"modalities", statistics_set::join(names)}});
  index_t done = 0;
  for (const auto& [input, shape] : plan) {
    if (progress) progress(done++, static_cast<index_t>(plan.size()), input);
    modality_stats merged;
    bool first = true;
    for (const auto& f : files) {
      if (!f.has(input)) continue;
      modality_stats s = f.load(input);
      if (first) {
        merged = std::move(s);
        first = false;
      } else {
        merged.merge(s);
      }
    }
    detail::statistics_file_codec::write(out, input, names, merged);
  }
  out.commit();
}

}  // namespace masquant
