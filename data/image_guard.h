// Pre-decode validation of untrusted JPEG / PNG bytes, run by decode_image (data/image.cpp)
// before any stb_image function sees the input.
//
// Why: the decoder is Debian's packaged stb_image 2.27 (/usr/include/stb), which has known
// memory-safety bugs and undefined behaviour on malformed input (tests/fuzz/fuzz_image.cpp found
// them; upstream fixed them after 2.27). We do not patch or copy stb; instead this file walks the
// container structure itself and rejects every input that can reach one of those bugs, so that
// stb only ever sees inputs on which its 2.27 code is well-defined.
//
// JPEG (what is checked, in file order):
//   - SOI (0xFFD8, optionally after 0xFF fill bytes), then marker segments, each introduced by
//     0xFF (fill bytes 0xFF allowed) and, except SOI/EOI/RSTn, a 2-byte big-endian length that
//     must be >= 2 and stay inside the buffer. Garbage between segments, a second SOI or SOF,
//     RSTn outside a scan and markers stb_image does not decode (arithmetic coding, lossless,
//     hierarchical, JPEG-LS, ...) are rejected. The walk ends at EOI, which is required.
//   - DHT: each table's class/id byte (class <= 1, id <= 3), its 16 code counts and its symbols
//     must fit the segment exactly; a table declaring more than 256 codes is rejected (stb 2.27
//     writes past its 256-entry arrays on it), and so is one whose code lengths over-subscribe
//     the code space.
//   - DQT: precision 0/1, id <= 3, exact length. DRI: length 4. SOF0/1/2: 8-bit, 1/3/4
//     components, non-zero dimensions within ImageLimits, sampling factors 1..4 that divide the
//     maximum, distinct component ids, quantisation table id <= 3.
//   - SOS: after SOF, component count/ids/table ids valid, spectral selection and successive
//     approximation in stb's accepted ranges, every Huffman table the scan uses defined, at most
//     kMaxJpegScans scans. The entropy-coded data after SOS must be non-empty and is split at
//     RSTn markers into restart intervals; their number must match the DRI interval.
//   - Every component must be coded by some scan (progressive: by a DC first scan, before any
//     other scan of it), so stb never outputs or refines uninitialised coefficients.
//   - The truncated-bitstream bug (stb 2.27 lets its bit counter go negative when a scan's data
//     ends with a marker before all blocks are decoded, then shifts by >= 32 bits): a length
//     heuristic cannot rule this out, because corrupt data can make any number of bytes run out
//     early. So the guard decodes the entropy-coded data itself - Huffman symbols, magnitude
//     bits, progressive EOB runs and refinement bits, following the same decoding procedure as
//     stb (baseline, and progressive DC/AC first and refinement scans) without dequantising or
//     transforming anything - and rejects the file if any restart interval needs more bits than
//     it holds, contains an invalid Huffman code, or has a DC value outside the 16-bit range
//     (stb 2.27 overflows int on DC prediction / dequantisation otherwise). A file that passes
//     never makes stb read past the data of an interval, so its bit counter stays >= 0.
//     So this bug IS guarded from outside, completely, at the price of a second entropy-decoding
//     pass (about 15 us for a 48x48 FER face; roughly 60% of stb's own time on large photos).
//     Residual assumption: the guard's bit accounting mirrors stb 2.27's procedure (the
//     standard's, plus stb's leniencies: any s == 0 AC symbol other than ZRL ends a baseline
//     block, coefficients past position 63 land on 63, refinement history is stb's 16-bit
//     value != 0). If the stb package changes that procedure, re-run scripts/fuzz.sh.
//
// Stricter than stb: truncated scans that stb would render partially (grey below the cut),
// garbage between segments, extra RSTn markers and files without EOI are rejected, not decoded.
// Not validated here: the contents of PNG's zlib stream and filter bytes, and JPEG APPn/COM
// payloads; stb 2.27 handles those with bounds checks (no known bug), and tests/fuzz/
// fuzz_image.cpp keeps exercising them behind this guard.
//
// PNG: the 8-byte signature, then chunks of length (<= 2^31-1) / type (four ASCII letters) /
// data / CRC (not verified; stb does not either), each bounds-checked against the buffer. IHDR
// must come first, be 13 bytes and declare valid dimensions (within ImageLimits), bit depth,
// colour type, compression, filter and interlace methods; an IDAT chunk of length 0 is rejected
// (stb 2.27 then calls memcpy(NULL, .., 0)); at least one IDAT and a final IEND are required.
//
// Anything that is neither a JPEG nor a PNG by its signature is rejected. Every rejection is a
// fer::Error "image '<name>': ..." naming the format, the offset and the reason.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "data/image.h"

namespace fer::data {

constexpr int kMaxJpegScans = 256;  // progressive encoders write ~10; each scan costs a full pass

// Throw fer::Error unless `bytes` is a JPEG or PNG that passes the checks above. `name` is the
// display name used in the message.
void guard_image(const uint8_t* bytes, size_t size, const std::string& name,
                 const ImageLimits& limits = {});
void guard_jpeg(const uint8_t* bytes, size_t size, const std::string& name,
                const ImageLimits& limits = {});
void guard_png(const uint8_t* bytes, size_t size, const std::string& name,
               const ImageLimits& limits = {});

}  // namespace fer::data
