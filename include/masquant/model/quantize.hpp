// quantize.hpp: a Hugging Face checkpoint in, a deployable MASQuant checkpoint out — every linear
// the recipe selects calibrated from its input's statistics, one group at a time, written into
// shards by the plan; a run can resume, or cover part of the model for a later join.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <masquant/calibrate/calibrate.hpp>
#include <masquant/error.hpp>
#include <masquant/io/checkpoint.hpp>
#include <masquant/io/detail/atomic_file.hpp>
#include <masquant/io/safetensors_stream_writer.hpp>
#include <masquant/model/calibration_data.hpp>
#include <masquant/model/plan.hpp>
#include <masquant/model/recipe.hpp>
#include <masquant/model/settings.hpp>
#include <masquant/parallel.hpp>
#include <masquant/version.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace masquant {

/// What to do when the output directory already exists.
enum class existing_output : std::uint8_t {
  refuse,     ///< an error (the default): nothing is overwritten by accident
  resume,     ///< keep the shards an earlier run of the same inputs completed, compute the rest
  overwrite,  ///< compute every shard again, replacing files of the same names
};

/// Which part of the model a run computes (empty: all of it).
struct model_part {
  /// Decoder blocks [first, last] (the number after "layers."), or none.
  std::optional<std::pair<index_t, index_t>> layers;
  /// Patterns over linear names (name_pattern); a group is in the part when any member matches.
  std::vector<std::string> only;
  bool empty() const noexcept { return !layers && only.empty(); }
};

/// Where quantize_checkpoint() is.
struct quantize_progress {
  std::string linear;         ///< the linear being calibrated, or just finished
  bool finished = false;      ///< `linear` is done (its tensors are written)
  index_t linears_done = 0;   ///< linears finished in this run
  index_t linears_total = 0;  ///< linears this run calibrates
  double work_done = 0;       ///< fraction of the run's work done, in [0, 1] (for an ETA)
  const calibration_progress* stage = nullptr;  ///< calibrate()'s own progress, when inside it
};

/// The inputs, output and choices of one run of quantize_checkpoint().
struct quantize_options {
  std::string model;   ///< Hugging Face checkpoint directory
  std::string output;  ///< output directory (created)
  quantization_recipe recipe;
  /// Statistics files (statistics_file) and optional token sample files, or `inputs`: one file of
  /// raw calibration tokens P.inputs.<modality> (then statistics and tokens stay empty).
  std::vector<std::string> statistics, tokens;
  std::string inputs;
  /// Largest shard in bytes (a unit larger than this sits alone in its shard).
  std::uint64_t shard_bytes = 4'000'000'000;
  existing_output existing = existing_output::refuse;
  /// A part of the model: written to output/parts/, joined into the checkpoint by a run with
  /// `join` set (and the same inputs).
  model_part part;
  bool join = false;
  parallel_for_fn parallel{};
  std::function<void(const quantize_progress&)> progress{};
};

/// What one linear's calibration reported.
struct linear_result {
  std::string name;
  calibration_report report;
};

/// What quantize_checkpoint() did.
struct quantize_result {
  quantization_plan plan;
  std::vector<linear_result> linears;  ///< every linear calibrated by this run, in order
  index_t shards_written = 0, shards_kept = 0;
  std::string part_file;  ///< the part written (part runs)
  std::string fingerprint;
};

namespace detail {

/// 64-bit FNV-1a, to fingerprint the inputs of a plan.
class fnv1a {
 public:
  fnv1a& add(const void* data, std::size_t n) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h_ = (h_ ^ p[i]) * 1099511628211ull;
    return *this;
  }
  fnv1a& add(const std::string& s) noexcept {
    add(s.data(), s.size());
    return add("\0", 1);
  }
  template <class T>
  fnv1a& add_value(T v) noexcept {
    return add(&v, sizeof v);
  }
  std::string hex() const {
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h_));
    return out;
  }

 private:
  std::uint64_t h_ = 14695981039346656037ull;
};

/// Identifies a file by path, size and modification time (so a changed input changes the plan's
/// fingerprint without reading gigabytes).
inline void add_file_identity(fnv1a& h, const std::string& path) {
  struct stat st {};
  MASQUANT_CHECK(::stat(path.c_str(), &st) == 0, errc::io_error, path, ": cannot stat");
  h.add(std::filesystem::path(path).filename().string());
  h.add_value(static_cast<std::int64_t>(st.st_size));
  h.add_value(static_cast<std::int64_t>(st.st_mtim.tv_sec));
  h.add_value(static_cast<std::int64_t>(st.st_mtim.tv_nsec));
}

/// The block number of a name (the digits after "layers."), or -1.
inline index_t block_of(const std::string& name) {
  const auto at = name.find("layers.");
  if (at == std::string::npos) return -1;
  index_t n = -1;
  for (std::size_t i = at + 7; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]));
       ++i)
    n = (n < 0 ? 0 : n * 10) + (name[i] - '0');
  return n;
}

inline std::string shard_metadata_key() {
  return "masquant_plan";
}

/// The fingerprint stored in a shard or part file, or "" when the file is absent or unreadable.
inline std::string fingerprint_of(const std::string& path) {
  if (!std::filesystem::exists(path)) return "";
  try {
    const safetensors_file f(path);
    const auto it = f.metadata().find(shard_metadata_key());
    return it == f.metadata().end() ? "" : it->second;
  } catch (const error&) {
    return "";
  }
}

}  // namespace detail

/// The quantization_config a quantized checkpoint's config.json carries: the recipe as JSON
/// (recipe_from_json reads it back) with the modalities filled in, plus "format": "masquant" and
/// the library version.
inline nlohmann::ordered_json quantization_config(const quantization_recipe& recipe,
                                                  const std::vector<std::string>& modalities) {
  quantization_recipe r = recipe;
  r.modalities = modalities;
  nlohmann::ordered_json j = to_json(r);
  j["format"] = "masquant";
  j["masquant_version"] = version_string;
  return j;
}

/// Quantizes a checkpoint (docs/model.md):
/// 1. opens the checkpoint and the calibration data and makes the plan (make_plan), checking
///    every input before any calibration: a linear whose input has no statistics, statistics of
///    another width, a pattern that matches nothing, modalities that differ between files;
/// 2. unless the output exists (see existing_output), creates it;
/// 3. per shard (or, for a part, per selected group), per group: loads the weights as float and
///    the input's statistics, calibrates each linear (calibrate() from the statistics, with the
///    token sample when there is one), and writes its tensors; copied tensors go through the
///    kernel (copy_file_range). Each shard is written atomically; one group's working set is in
///    memory at a time;
/// 4. writes model.safetensors.index.json (sharded output) and config.json with
///    quantization_config last, so a directory with config.json is complete.
/// Deterministic: the same inputs give the same bytes, also across --resume and part + join.
/// Throws masquant::error naming the file, tensor, input or pattern at fault; a failed run
/// leaves the shards it completed (for --resume) and nothing half-written.
template <class Deferred = void>
quantize_result quantize_checkpoint(const quantize_options& options);

}  // namespace masquant

#include <masquant/model/detail/quantize_impl.hpp>
