// CRC-32 (the IEEE 802.3 polynomial of zlib, PNG and gzip: reflected 0xEDB88320, initial value and
// final xor 0xFFFFFFFF), to tell damaged checkpoint bytes from intact ones. crc32("123456789") is
// 0xCBF43926. Chainable: crc32(b, nb, crc32(a, na)) is the CRC of a followed by b.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fer {

uint32_t crc32(const void* data, size_t bytes, uint32_t crc = 0);

}  // namespace fer
