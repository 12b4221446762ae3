// checkpoint.hpp: a Hugging Face checkpoint directory read in place — config.json, and the
// tensors of model.safetensors or of its shards (model.safetensors.index.json), memory-mapped.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <masquant/error.hpp>
#include <masquant/io/detail/json_file.hpp>
#include <masquant/io/safetensors_file.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace masquant {

/// Name of the index of a sharded checkpoint.
inline constexpr const char* checkpoint_index_name = "model.safetensors.index.json";
/// Name of the one file of an unsharded checkpoint.
inline constexpr const char* checkpoint_single_name = "model.safetensors";

/// A Hugging Face checkpoint directory: `config.json` and either `model.safetensors` or the shards
/// `model-0000i-of-0000n.safetensors` listed by `model.safetensors.index.json`. Opening maps every
/// shard and validates every header (safetensors_file) and the index: each name it lists must be
/// in the shard it names, each shard's tensors must be listed there, no tensor twice. Tensors are
/// then read in place, one at a time: load_f32() converts a BF16/F16/F32 weight to float, and
/// release() gives its pages back, so reading a model costs memory for one weight at a time.
///
/// Example:
/// \code
///   masquant::hf_checkpoint ckpt("Qwen2.5-VL-3B-Instruct");
///   std::string type = ckpt.model_type();                              // "qwen2_5_vl"
///   auto w = ckpt.load_f32("model.layers.0.self_attn.q_proj.weight");  // [2048, 2048] floats
///   ckpt.release("model.layers.0.self_attn.q_proj.weight");
/// \endcode
class hf_checkpoint {
 public:
  /// Opens the checkpoint in `dir`. Throws errc::io_error (a missing directory, config.json or
  /// shard, naming it) or errc::format_error naming the file and the tensor or key at fault.
  explicit hf_checkpoint(std::string dir) : dir_(std::move(dir)) {
    while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
    config_ = detail::parse_json_file(path("config.json"));
    MASQUANT_CHECK(config_.is_object(), errc::format_error, path("config.json"),
                   ": not a JSON object");
    const std::string index_path = path(checkpoint_index_name);
    if (std::ifstream(index_path).good()) {
      open_sharded(index_path);
    } else {
      MASQUANT_CHECK(std::ifstream(path(checkpoint_single_name)).good(), errc::io_error, dir_,
                     ": no ", checkpoint_single_name, " and no ", checkpoint_index_name,
                     " (not a Hugging Face safetensors checkpoint)");
      add_shard(checkpoint_single_name);
    }
    for (const auto& kv : where_) names_.push_back(kv.first);
    std::sort(names_.begin(), names_.end());
  }

  const std::string& directory() const noexcept { return dir_; }
  /// `dir/name`.
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  /// config.json, parsed.
  const nlohmann::json& config() const noexcept { return config_; }
  /// config.json's "model_type" ("" when absent).
  std::string model_type() const {
    const auto it = config_.find("model_type");
    return it != config_.end() && it->is_string() ? it->get<std::string>() : std::string();
  }
  /// Whether the checkpoint is sharded (has an index).
  bool sharded() const noexcept { return sharded_; }
  /// The safetensors files, in index order (file names relative to directory()).
  const std::vector<std::string>& shard_names() const noexcept { return shard_names_; }
  /// Every tensor name, sorted.
  const std::vector<std::string>& tensor_names() const noexcept { return names_; }

  bool has(std::string_view name) const { return where_.find(std::string(name)) != where_.end(); }
  /// The file holding a tensor; throws errc::out_of_range naming the tensor.
  const safetensors_file& file_of(std::string_view name) const {
    return *shards_[shard_index(name)];
  }
  /// A tensor's header entry (dtype, shape, offsets in its file).
  const tensor_info& info(std::string_view name) const { return file_of(name).info(name); }

  /// Loads a tensor as float (F32 copied; F16, BF16 exact; see safetensors_file::load_f32).
  owned_tensor<float> load_f32(std::string_view name) const { return file_of(name).load_f32(name); }

  /// Gives back the memory pages a load of `name` touched (they are re-read from the file if
  /// used again). The mapping stays valid.
  void release(std::string_view name) const {
    const safetensors_file& f = file_of(name);
    const auto bytes = f.bytes(name);
    if (bytes.size() == 0) return;
    // Whole pages only: the neighbouring tensors may be in use.
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const auto address = reinterpret_cast<std::uintptr_t>(bytes.data());
    const std::size_t skip = (page - address % page) % page;
    const auto size = static_cast<std::size_t>(bytes.size());
    if (size <= skip) return;
    const std::size_t length = (size - skip) / page * page;
    if (length > 0)
      static_cast<void>(
          ::madvise(const_cast<std::uint8_t*>(bytes.data()) + skip, length, MADV_DONTNEED));
  }

 private:
  std::size_t shard_index(std::string_view name) const {
    const auto it = where_.find(std::string(name));
    MASQUANT_CHECK(it != where_.end(), errc::out_of_range, dir_, ": no tensor '", name,
                   "' in the checkpoint");
    return it->second;
  }

  std::size_t add_shard(const std::string& file) {
    const auto it = std::find(shard_names_.begin(), shard_names_.end(), file);
    if (it != shard_names_.end()) return static_cast<std::size_t>(it - shard_names_.begin());
    MASQUANT_CHECK(
        file.find('/') == std::string::npos && !file.empty() && file != "." && file != "..",
        errc::format_error, path(checkpoint_index_name), ": shard name '", file,
        "' is not a file name in the checkpoint directory");
    MASQUANT_CHECK(std::ifstream(path(file)).good(), errc::io_error, path(file),
                   ": missing shard (cannot open)");
    shard_names_.push_back(file);
    shards_.push_back(std::make_unique<safetensors_file>(path(file)));
    const std::size_t k = shards_.size() - 1;
    if (!sharded_)
      for (const tensor_info& t : shards_[k]->tensors()) where_.emplace(t.name, k);
    return k;
  }

  void open_sharded(const std::string& index_path) {
    sharded_ = true;
    const nlohmann::json index = detail::parse_json_file(index_path);
    const auto map = index.find("weight_map");
    MASQUANT_CHECK(index.is_object() && map != index.end() && map->is_object(), errc::format_error,
                   index_path, ": no \"weight_map\" object");
    for (const auto& [name, file] : map->items()) {
      MASQUANT_CHECK(file.is_string(), errc::format_error, index_path, ": \"weight_map\" entry '",
                     name, "' is not a file name");
      const std::size_t k = add_shard(file.get<std::string>());
      MASQUANT_CHECK(shards_[k]->has(name), errc::format_error, index_path, ": tensor '", name,
                     "' is not in ", shard_names_[k], ", which the index names for it");
      where_.emplace(name, k);
    }
    for (std::size_t k = 0; k < shards_.size(); ++k)
      for (const tensor_info& t : shards_[k]->tensors()) {
        const auto it = where_.find(t.name);
        MASQUANT_CHECK(it != where_.end() && it->second == k, errc::format_error,
                       path(shard_names_[k]), ": tensor '", t.name,
                       "' is not listed for this file in ", checkpoint_index_name);
      }
  }

  std::string dir_;
  nlohmann::json config_;
  bool sharded_ = false;
  std::vector<std::string> shard_names_;
  std::vector<std::unique_ptr<safetensors_file>> shards_;
  std::unordered_map<std::string, std::size_t> where_;
  std::vector<std::string> names_;
};

}  // namespace masquant
