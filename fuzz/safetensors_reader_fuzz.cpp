// libFuzzer target: arbitrary bytes through the safetensors reader (the parser files use too).
// Every input must either parse, with every tensor's data readable, or throw masquant::error;
// anything else (a crash, a sanitizer report, another exception type) is a bug.
#include <cstddef>
#include <cstdint>
#include <masquant/io/safetensors_file.hpp>

namespace {

// Reads every byte of every tensor and every typed load the dtype allows.
void touch(const masquant::safetensors_file& f) {
  unsigned sum = 0;
  for (const masquant::tensor_info& t : f.tensors()) {
    for (std::uint8_t b : f.bytes(t.name)) sum += b;
    if (masquant::is_supported(t.type)) {
      try {
        const auto v = f.view_f32(t.name);
        for (float x : v.vector()) sum += x == 0.0f;
      } catch (const masquant::error& e) {
        if (e.code() != masquant::errc::overflow) throw;  // F64/I32 beyond float: documented
      }
    }
    if (t.type == masquant::dtype::i8) sum += f.view<std::int8_t>(t.name).matrix().rows() > 0;
    if (t.type == masquant::dtype::f16) sum += f.load<masquant::half>(t.name).size() > 0;
    (void)f.info(t.name).byte_size();
  }
  for (const auto& kv : f.metadata())
    sum += static_cast<unsigned>(kv.first.size() + kv.second.size());
  volatile unsigned sink = sum;
  (void)sink;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    touch(masquant::safetensors_file::from_memory(data, size, "<fuzz>"));
  } catch (const masquant::error&) {
    // Rejected input: the expected outcome for most bytes.
  }
  return 0;
}
