// libFuzzer target: the bounded image decoder (data/image.h: our validator, data/image_guard.h,
// then Debian's stb_image 2.27) on arbitrary bytes from memory.
// Any input must either decode to a 48x48 face or throw fer::Error - never crash, leak, hang or
// trip AddressSanitizer / UndefinedBehaviorSanitizer. Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>

#include "data/image.h"
#include "engine/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const fer::data::GrayImage image = fer::data::decode_image(data, size, "fuzz");
    if (image.pixels.size() != static_cast<size_t>(image.width) * image.height) __builtin_trap();
    // The resize path on whatever size came out (the loaders' decode_face does the same).
    const fer::data::GrayImage face =
        fer::data::resize_gray(image, fer::data::kFaceSize, fer::data::kFaceSize);
    if (face.pixels.size() != static_cast<size_t>(fer::data::kFacePixels)) __builtin_trap();
  } catch (const fer::Error&) {
    // Rejected input: the expected outcome for most mutations.
  }
  return 0;
}
