// Safetensors: the checkpoint format of Hugging Face's `safetensors` library, read and written
// byte-compatibly with the reference implementation.
//
// Layout of a file:
//
//   [8 bytes]  N, the header length, as a little-endian uint64
//   [N bytes]  the header: a UTF-8 JSON object, right-padded with spaces so that the data section
//              starts at a multiple of 8 bytes
//   [rest]     the data section: the raw little-endian bytes of every tensor, back to back
//
// The header maps each tensor name to {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]},
// where [b, e) is the tensor's byte range relative to the start of the data section. An optional
// "__metadata__" entry maps strings to strings. As in the reference implementation, the tensors
// must cover the data section exactly: no gaps, no overlaps, no trailing bytes.
//
// Writing: float32 tensors ("F32"), sorted by name, header keys in the reference order, written
// atomically (temporary file, fsync, rename, fsync of the directory). Reading: F32, and also F16,
// BF16, F64, I64 and I32, converted to float32 (torchvision checkpoints hold int64
// `num_batches_tracked`). Every malformed input is a fer::Error naming the file and the tensor or
// byte offset at fault; the reader never reads out of bounds, whatever the bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "engine/tensor.h"

namespace fer {

struct SafetensorsFile {
  StateDict tensors;                            // all on the CPU, float32
  std::map<std::string, std::string> metadata;  // the "__metadata__" entry (empty if absent)
};

// The largest header accepted, as in the reference implementation.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// Writes `tensors` (on any device) atomically to `path`. The "__metadata__" entry is written only
// when `metadata` is non-empty, as the reference does. Throws fer::Error naming the path (and the
// errno text) on failure, leaving no temporary file behind and `path` untouched.
void save_safetensors(const std::string& path, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads a whole file. Tensors come back on the CPU as float32.
SafetensorsFile load_safetensors(const std::string& path);

// Parses the bytes of a file already in memory; `name_for_errors` stands for the file in messages.
SafetensorsFile parse_safetensors(const uint8_t* data, size_t size,
                                  const std::string& name_for_errors);

// Checks that a loaded state dict has exactly the names and shapes of `expected` (typically a
// model's state_dict()). Throws one fer::Error naming `file` and listing every missing tensor,
// unexpected tensor and shape mismatch (with both shapes).
void check_state_dict_matches(const StateDict& expected, const StateDict& loaded,
                              const std::string& file);

}  // namespace fer
