// libFuzzer target: the safetensors reader (engine/safetensors.h) on arbitrary bytes, both ways
// in: parse_safetensors from memory and load_safetensors from a file (an in-memory memfd, so
// nothing touches the disk), which read the data section differently (in place, or by seeks and
// staged reads). Any input must either load or throw fer::Error - never crash, read out of bounds
// or allocate more than the file's own size implies - and the two readers must agree: the same
// tensors, shapes, values and metadata, or both an error. Built and run by scripts/fuzz.sh.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "engine/checksum.h"
#include "engine/error.h"
#include "engine/safetensors.h"

namespace {

// The bytes as a file: a memfd, named by its /proc/self/fd path. Created once, rewritten per input.
std::string as_file(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("fuzz.safetensors", 0);
  if (fd < 0 || ftruncate(fd, 0) != 0) __builtin_trap();
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) __builtin_trap();
    done += static_cast<size_t>(n);
  }
  return "/proc/self/fd/" + std::to_string(fd);
}

// Every tensor is a float32 CPU tensor whose element count is its shape's, and whose bytes fit in
// the file (each element came from at least 2 bytes of it; 1 for none at all).
void check(const fer::SafetensorsFile& f, size_t size) {
  uint64_t elements = 0;
  for (const auto& [name, t] : f.tensors) {
    if (!t.defined()) __builtin_trap();
    int64_t n = 1;
    for (int64_t d : t.shape()) {
      if (d < 0) __builtin_trap();
      n *= d;
    }
    if (n != t.numel()) __builtin_trap();
    elements += static_cast<uint64_t>(n);
    // Touch every value, as a checkpoint's checksum check does (apps/training/checkpoint.h).
    (void)fer::crc32(t.data(), static_cast<size_t>(n) * sizeof(float));
  }
  if (elements * 2 > size) __builtin_trap();
}

bool same(const fer::SafetensorsFile& a, const fer::SafetensorsFile& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (const auto& [name, t] : a.tensors) {
    auto it = b.tensors.find(name);
    if (it == b.tensors.end() || it->second.shape() != t.shape()) return false;
    // Bytes, not values: NaN payloads must survive too.
    if (t.numel() && std::memcmp(t.data(), it->second.data(), static_cast<size_t>(t.numel()) * 4) != 0)
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<fer::SafetensorsFile> parsed, loaded;
  try {
    parsed = fer::parse_safetensors(data, size, "fuzz.safetensors");
    check(*parsed, size);
  } catch (const fer::Error&) {
  }
  try {
    loaded = fer::load_safetensors(as_file(data, size));
    check(*loaded, size);
  } catch (const fer::Error&) {
  }
  if (parsed.has_value() != loaded.has_value()) __builtin_trap();
  if (parsed && !same(*parsed, *loaded)) __builtin_trap();
  return 0;
}
