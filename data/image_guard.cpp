// Pre-decode validation of JPEG / PNG bytes (see image_guard.h for what is checked and why).
// Written for this project from the JPEG standard (ITU-T T.81: marker segments, Huffman table
// specification, baseline and progressive entropy decoding, Annexes B, C, F.2 and G.1.2) and the
// PNG specification (chunk layout, IHDR fields).
#include "data/image_guard.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "engine/error.h"

namespace fer::data {

namespace {

std::string display_name(const std::string& name) { return name.empty() ? "<memory>" : name; }

uint32_t be16(const uint8_t* p) { return (static_cast<uint32_t>(p[0]) << 8) | p[1]; }
uint32_t be32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | p[3];
}

std::string hex8(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", v & 0xFFu);
  return buf;
}

[[noreturn]] void fail_dimensions(const std::string& who, int64_t w, int64_t h,
                                  const ImageLimits& limits) {
  fail("image '", who, "': declared dimensions ", w, "x", h, " exceed the limits (side <= ",
       limits.max_side, ", pixels <= ", limits.max_pixels, ")");
}

void check_dimensions(const std::string& who, int64_t w, int64_t h, const ImageLimits& limits) {
  if (w > limits.max_side || h > limits.max_side || w * h > limits.max_pixels)
    fail_dimensions(who, w, h, limits);
}

// ---- JPEG -----------------------------------------------------------------------------------

// The name of a JPEG marker code, for messages.
std::string marker_name(int m) {
  switch (m) {
    case 0xC0: return "SOF0";
    case 0xC1: return "SOF1";
    case 0xC2: return "SOF2";
    case 0xC4: return "DHT";
    case 0xD8: return "SOI";
    case 0xD9: return "EOI";
    case 0xDA: return "SOS";
    case 0xDB: return "DQT";
    case 0xDC: return "DNL";
    case 0xDD: return "DRI";
    case 0xFE: return "COM";
    default: break;
  }
  if (m >= 0xD0 && m <= 0xD7) return "RST" + std::to_string(m - 0xD0);
  if (m >= 0xE0 && m <= 0xEF) return "APP" + std::to_string(m - 0xE0);
  if (m >= 0xC0 && m <= 0xCF) return "SOF" + std::to_string(m - 0xC0);
  return "marker " + hex8(m);
}

// A Huffman table in canonical form (T.81 Annex C): codes of each length 1..16 are consecutive
// integers, starting where the previous length ended, shifted left by one.
struct HuffTable {
  bool defined = false;
  int count[17] = {};          // number of codes of each length
  uint32_t first_code[17] = {};  // the first code of each length
  int first_index[17] = {};    // index into symbols of that code
  uint8_t symbols[256] = {};
  // Lookahead of 8 bits: for a code of length <= 8 starting with those bits, its length and
  // symbol; length 0 if the code is longer (or invalid).
  uint8_t fast_len[256] = {};
  uint8_t fast_sym[256] = {};
};

struct Component {
  int id = 0, h = 1, v = 1;
  int td = 0, ta = 0;            // Huffman table ids of the current scan
  int bw = 0, bh = 0;            // blocks in a single-component scan
  int coeff_w = 0, coeff_h = 0;  // blocks in the plane of an interleaved scan (whole MCUs)
  int dc_pred = 0;
  bool coded = false;            // some scan has coded it (progressive: a DC first scan)
  // Progressive: for each block, bit k set when the coefficient at zig-zag position k is
  // nonzero (the refinement scans read correction bits only for those).
  std::vector<uint64_t> nonzero;
};

// One restart interval of entropy-coded data: bytes [begin, end) (with 0xFF00 stuffing and 0xFF
// fill bytes still in place) holding `bytes` data bytes once unstuffed.
struct Interval {
  size_t begin = 0, end = 0;
  int64_t bytes = 0;
};

class JpegGuard {
 public:
  JpegGuard(const uint8_t* data, size_t size, const std::string& who, const ImageLimits& limits)
      : b_(data), n_(size), who_(who), limits_(limits) {}

  void run();

 private:
  template <typename... Parts>
  [[noreturn]] void reject(size_t offset, const Parts&... parts) const {
    fail("image '", who_, "': corrupt or truncated JPEG at offset ", offset, ": ", parts...);
  }

  // Reads a marker at pos_ (0xFF, any 0xFF fill bytes, the code); sets marker_ / marker_at_.
  void read_marker();
  // Reads a marker segment's length at pos_; returns the payload [begin, end) and advances pos_.
  void read_segment(size_t& begin, size_t& end);

  void parse_dht(size_t begin, size_t end);
  void parse_dqt(size_t begin, size_t end);
  void parse_sof(size_t begin, size_t end);
  void parse_sos(size_t begin, size_t end);
  void collect_intervals();  // the entropy-coded data after an SOS header, split at RSTn
  void check_scan();         // decodes it, counting bits (see image_guard.h)

  // Bit reader over one interval.
  void start_interval(const Interval& iv);
  void fill();
  uint32_t peek16() {
    if (nacc_ < 16) fill();
    return static_cast<uint32_t>(acc_ >> 48);
  }
  void consume(int n);       // 1..16 bits
  uint32_t bits(int n) {     // 1..16 bits, unsigned
    if (nacc_ < n) fill();
    const uint32_t v = static_cast<uint32_t>(acc_ >> (64 - n));
    consume(n);
    return v;
  }
  int receive_extend(int s) {  // T.81 F.2.2.1: s magnitude bits -> signed value
    const int v = static_cast<int>(bits(s));
    return v < (1 << (s - 1)) ? v - (1 << s) + 1 : v;
  }
  int decode(const HuffTable& t);
  void check_dc(Component& c, int t);

  void block_baseline(Component& c);
  void block_dc_progressive(Component& c, size_t block);
  void block_ac_first(Component& c, size_t block);
  void block_ac_refine(Component& c, size_t block);
  void decode_block(Component& c, size_t block);
  void bits_exhausted() const;

  const uint8_t* b_;
  size_t n_;
  std::string who_;
  ImageLimits limits_;

  size_t pos_ = 0;
  int marker_ = 0;
  size_t marker_at_ = 0;

  HuffTable dc_[4], ac_[4];
  bool have_sof_ = false, progressive_ = false;
  int width_ = 0, height_ = 0;
  int mcu_x_ = 0, mcu_y_ = 0;
  std::vector<Component> comps_;
  int restart_interval_ = 0;
  int scans_ = 0;

  // The current scan.
  size_t sos_at_ = 0;
  std::vector<int> scan_comps_;
  int ss_ = 0, se_ = 0, ah_ = 0, al_ = 0;
  std::vector<Interval> intervals_;
  int eob_run_ = 0;
  int64_t blocks_done_ = 0, blocks_total_ = 0;

  // Bit reader state: acc_ holds nacc_ bits, the next one in bit 63; real_left_ counts the data
  // bits of the interval not yet consumed (bits past the data read as 0 but make it negative).
  const Interval* iv_ = nullptr;
  size_t rpos_ = 0;
  uint64_t acc_ = 0;
  int nacc_ = 0;
  int64_t real_left_ = 0;
};

void JpegGuard::read_marker() {
  if (pos_ >= n_) reject(pos_, "the file ends without an EOI marker (truncated)");
  if (b_[pos_] != 0xFF)
    reject(pos_, "expected a marker (0xFF) after the previous segment, found ", hex8(b_[pos_]));
  size_t q = pos_ + 1;
  while (q < n_ && b_[q] == 0xFF) ++q;  // fill bytes
  if (q >= n_) reject(pos_, "the file ends without an EOI marker (truncated)");
  marker_ = b_[q];
  marker_at_ = q - 1;
  pos_ = q + 1;
}

void JpegGuard::read_segment(size_t& begin, size_t& end) {
  const std::string name = marker_name(marker_);
  if (n_ - pos_ < 2) reject(marker_at_, name, " segment: the length field runs past the end of the file");
  const uint32_t len = be16(b_ + pos_);
  if (len < 2) reject(marker_at_, name, " segment: length ", len, " is less than 2");
  if (len > n_ - pos_)
    reject(marker_at_, name, " segment: length ", len, " runs past the end of the file (",
           n_ - pos_, " bytes left)");
  begin = pos_ + 2;
  end = pos_ + len;
  pos_ = end;
}

void JpegGuard::parse_dht(size_t begin, size_t end) {
  size_t p = begin;
  for (int t = 0; p < end; ++t) {
    if (end - p < 17)
      reject(p, "DHT table ", t, ": its class/id byte and 16 code counts run past the end of the segment");
    const int tc = b_[p] >> 4, th = b_[p] & 15;
    if (tc > 1 || th > 3)
      reject(p, "DHT table ", t, ": bad class/id byte ", hex8(b_[p]), " (class 0..1, id 0..3)");
    HuffTable& h = tc == 0 ? dc_[th] : ac_[th];
    h = HuffTable{};
    int total = 0;
    for (int len = 1; len <= 16; ++len) {
      h.count[len] = b_[p + len];
      total += h.count[len];
    }
    if (total > 256)
      reject(p, "DHT table ", t, " (class ", tc, ", id ", th, ") declares ", total,
             " codes; a Huffman table holds at most 256");
    if (static_cast<size_t>(total) > end - (p + 17))
      reject(p, "DHT table ", t, " (class ", tc, ", id ", th, "): its ", total,
             " symbols run past the end of the segment (", end - (p + 17), " bytes left)");
    std::memcpy(h.symbols, b_ + p + 17, static_cast<size_t>(total));
    // Canonical codes; a length whose codes do not fit in that many bits over-subscribes the
    // code space (the decoder could not tell codes apart).
    uint32_t code = 0;
    int index = 0;
    for (int len = 1; len <= 16; ++len) {
      h.first_code[len] = code;
      h.first_index[len] = index;
      if (h.count[len] > 0) {
        code += static_cast<uint32_t>(h.count[len]);
        index += h.count[len];
        if (code - 1 >= (1u << len))
          reject(p, "DHT table ", t, " (class ", tc, ", id ", th, "): ", h.count[len],
                 " codes of length ", len, " over-subscribe the code space");
      }
      code <<= 1;
    }
    for (int len = 1; len <= 8; ++len)
      for (int i = 0; i < h.count[len]; ++i) {
        const uint32_t c = h.first_code[len] + static_cast<uint32_t>(i);
        const uint32_t lo = c << (8 - len), hi = (c + 1) << (8 - len);
        for (uint32_t x = lo; x < hi; ++x) {
          h.fast_len[x] = static_cast<uint8_t>(len);
          h.fast_sym[x] = h.symbols[h.first_index[len] + i];
        }
      }
    h.defined = true;
    p += 17 + static_cast<size_t>(total);
  }
}

void JpegGuard::parse_dqt(size_t begin, size_t end) {
  size_t p = begin;
  while (p < end) {
    const int pq = b_[p] >> 4, tq = b_[p] & 15;
    if (pq > 1) reject(p, "DQT: precision ", pq, " (must be 0 or 1)");
    if (tq > 3) reject(p, "DQT: table id ", tq, " (must be 0..3)");
    const size_t need = 1 + 64 * static_cast<size_t>(pq + 1);
    if (end - p < need) reject(p, "DQT: table ", tq, " runs past the end of the segment");
    p += need;
  }
}

void JpegGuard::parse_sof(size_t begin, size_t end) {
  const std::string name = marker_name(marker_);
  if (have_sof_) reject(marker_at_, "a second frame header (", name, ")");
  if (end - begin < 6) reject(marker_at_, name, ": segment too short");
  const uint8_t* s = b_ + begin;
  if (s[0] != 8) reject(marker_at_, name, ": sample precision ", int(s[0]), " (only 8-bit is decoded)");
  height_ = static_cast<int>(be16(s + 1));
  width_ = static_cast<int>(be16(s + 3));
  const int nc = s[5];
  if (width_ == 0 || height_ == 0)
    reject(marker_at_, name, ": invalid dimensions ", width_, "x", height_);
  check_dimensions(who_, width_, height_, limits_);
  if (nc != 1 && nc != 3 && nc != 4) reject(marker_at_, name, ": ", nc, " components (1, 3 or 4)");
  if (end - begin != 6 + 3 * static_cast<size_t>(nc))
    reject(marker_at_, name, ": length ", end - begin + 2, " does not match ", nc, " components");
  comps_.assign(nc, Component{});
  int hmax = 1, vmax = 1;
  for (int i = 0; i < nc; ++i) {
    Component& c = comps_[i];
    const uint8_t* e = s + 6 + 3 * i;
    c.id = e[0];
    c.h = e[1] >> 4;
    c.v = e[1] & 15;
    if (c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4)
      reject(marker_at_, name, ": component ", c.id, " has sampling factors ", c.h, "x", c.v, " (1..4)");
    if (e[2] > 3) reject(marker_at_, name, ": component ", c.id, " uses quantisation table ", int(e[2]));
    for (int j = 0; j < i; ++j)
      if (comps_[j].id == c.id) reject(marker_at_, name, ": component id ", c.id, " appears twice");
    hmax = std::max(hmax, c.h);
    vmax = std::max(vmax, c.v);
  }
  mcu_x_ = (width_ + 8 * hmax - 1) / (8 * hmax);
  mcu_y_ = (height_ + 8 * vmax - 1) / (8 * vmax);
  for (Component& c : comps_) {
    if (hmax % c.h != 0 || vmax % c.v != 0)
      reject(marker_at_, name, ": component ", c.id, " sampling ", c.h, "x", c.v,
             " is not an integer fraction of ", hmax, "x", vmax);
    const int cx = (width_ * c.h + hmax - 1) / hmax, cy = (height_ * c.v + vmax - 1) / vmax;
    c.bw = (cx + 7) / 8;
    c.bh = (cy + 7) / 8;
    c.coeff_w = mcu_x_ * c.h;
    c.coeff_h = mcu_y_ * c.v;
  }
  have_sof_ = true;
  progressive_ = marker_ == 0xC2;
}

void JpegGuard::parse_sos(size_t begin, size_t end) {
  sos_at_ = marker_at_;
  if (!have_sof_) reject(marker_at_, "SOS before any frame header (SOF)");
  if (++scans_ > kMaxJpegScans) reject(marker_at_, "more than ", kMaxJpegScans, " scans");
  if (end - begin < 1) reject(marker_at_, "SOS: segment too short");
  const int ns = b_[begin];
  if (ns < 1 || ns > 4 || ns > static_cast<int>(comps_.size()))
    reject(marker_at_, "SOS: ", ns, " components in the scan (the frame has ", comps_.size(), ")");
  if (end - begin != 4 + 2 * static_cast<size_t>(ns))
    reject(marker_at_, "SOS: length ", end - begin + 2, " does not match ", ns, " components");
  scan_comps_.clear();
  for (int i = 0; i < ns; ++i) {
    const uint8_t* e = b_ + begin + 1 + 2 * i;
    int which = -1;
    for (size_t j = 0; j < comps_.size(); ++j)
      if (comps_[j].id == e[0]) which = static_cast<int>(j);
    if (which < 0) reject(marker_at_, "SOS: component id ", int(e[0]), " is not in the frame");
    if (std::find(scan_comps_.begin(), scan_comps_.end(), which) != scan_comps_.end())
      reject(marker_at_, "SOS: component id ", int(e[0]), " appears twice");
    Component& c = comps_[which];
    c.td = e[1] >> 4;
    c.ta = e[1] & 15;
    if (c.td > 3 || c.ta > 3)
      reject(marker_at_, "SOS: component ", c.id, " uses Huffman tables ", c.td, "/", c.ta, " (0..3)");
    scan_comps_.push_back(which);
  }
  const uint8_t* t = b_ + begin + 1 + 2 * ns;
  ss_ = t[0];
  se_ = t[1];
  ah_ = t[2] >> 4;
  al_ = t[2] & 15;
  if (progressive_) {
    if (ss_ > 63 || se_ > 63 || ss_ > se_ || ah_ > 13 || al_ > 13)
      reject(marker_at_, "SOS: bad progression parameters Ss=", ss_, " Se=", se_, " Ah=", ah_, " Al=", al_);
    if (ss_ == 0 && se_ != 0) reject(marker_at_, "SOS: a progressive scan mixes DC and AC (Se=", se_, ")");
    if (ss_ > 0 && ns != 1) reject(marker_at_, "SOS: a progressive AC scan with ", ns, " components");
  } else {
    if (ss_ != 0 || ah_ != 0 || al_ != 0)
      reject(marker_at_, "SOS: bad sequential scan parameters Ss=", ss_, " Ah=", ah_, " Al=", al_);
    se_ = 63;
  }
  for (int which : scan_comps_) {
    Component& c = comps_[which];
    const bool dc_first = progressive_ ? (ss_ == 0 && ah_ == 0) : true;
    const bool uses_dc = dc_first, uses_ac = progressive_ ? ss_ > 0 : true;
    if (uses_dc && !dc_[c.td].defined)
      reject(marker_at_, "SOS: component ", c.id, " uses DC Huffman table ", c.td, ", which no DHT defined");
    if (uses_ac && !ac_[c.ta].defined)
      reject(marker_at_, "SOS: component ", c.id, " uses AC Huffman table ", c.ta, ", which no DHT defined");
    if (progressive_ && !dc_first && !c.coded)
      reject(marker_at_, "SOS: a progressive scan of component ", c.id, " before its first DC scan");
  }
}

void JpegGuard::collect_intervals() {
  intervals_.clear();
  Interval cur;
  cur.begin = pos_;
  size_t p = pos_;
  while (true) {
    if (p >= n_) reject(p, "the entropy-coded data of the SOS at offset ", sos_at_,
                        " runs to the end of the file (truncated, no EOI)");
    if (b_[p] != 0xFF) {
      ++cur.bytes;
      ++p;
      continue;
    }
    size_t q = p + 1;
    while (q < n_ && b_[q] == 0xFF) ++q;
    if (q >= n_) reject(p, "the entropy-coded data of the SOS at offset ", sos_at_,
                        " runs to the end of the file (truncated, no EOI)");
    if (b_[q] == 0) {  // stuffed 0xFF data byte
      ++cur.bytes;
      p = q + 1;
      continue;
    }
    cur.end = p;
    intervals_.push_back(cur);
    if (b_[q] >= 0xD0 && b_[q] <= 0xD7) {  // RSTn: the next restart interval
      cur = Interval{};
      cur.begin = p = q + 1;
      continue;
    }
    marker_ = b_[q];  // the marker after the scan
    marker_at_ = q - 1;
    pos_ = q + 1;
    return;
  }
}

void JpegGuard::start_interval(const Interval& iv) {
  iv_ = &iv;
  rpos_ = iv.begin;
  acc_ = 0;
  nacc_ = 0;
  real_left_ = iv.bytes * 8;
  eob_run_ = 0;
  for (Component& c : comps_) c.dc_pred = 0;
}

void JpegGuard::fill() {
  while (nacc_ <= 56) {
    uint64_t byte = 0;
    if (rpos_ < iv_->end) {
      byte = b_[rpos_++];
      // collect_intervals saw 0xFF (0xFF fill)* 0x00 here: one data byte 0xFF.
      if (byte == 0xFF) {
        while (b_[rpos_] == 0xFF) ++rpos_;
        ++rpos_;
      }
    }
    acc_ |= byte << (56 - nacc_);
    nacc_ += 8;
  }
}

void JpegGuard::bits_exhausted() const {
  reject(iv_->end, "the entropy-coded data of the SOS at offset ", sos_at_, " ends after block ",
         blocks_done_, " of ", blocks_total_,
         " (the bitstream is truncated: the decoder would read past the marker)");
}

void JpegGuard::consume(int n) {
  if (nacc_ < n) fill();
  acc_ <<= n;
  nacc_ -= n;
  real_left_ -= n;
  if (real_left_ < 0) bits_exhausted();
}

int JpegGuard::decode(const HuffTable& t) {
  const uint32_t look = peek16();
  int len = t.fast_len[look >> 8];
  int sym = t.fast_sym[look >> 8];
  if (len == 0) {
    for (len = 9; len <= 16; ++len) {
      const uint32_t code = look >> (16 - len);
      if (code >= t.first_code[len] && code - t.first_code[len] < static_cast<uint32_t>(t.count[len])) {
        sym = t.symbols[t.first_index[len] + static_cast<int>(code - t.first_code[len])];
        break;
      }
    }
    if (len > 16) {
      if (real_left_ < 16) bits_exhausted();
      reject(rpos_, "invalid Huffman code in the scan of the SOS at offset ", sos_at_, " (block ",
             blocks_done_, " of ", blocks_total_, ")");
    }
  }
  consume(len);
  return sym;
}

void JpegGuard::check_dc(Component& c, int t) {
  if (t > 15) reject(rpos_, "DC magnitude category ", t, " (at most 15) in block ", blocks_done_);
  const int diff = t ? receive_extend(t) : 0;
  const int dc = c.dc_pred + diff;
  // stb_image 2.27 multiplies the DC value by the quantiser (up to 65535) or by 2^Al in int
  // without an overflow check; 8-bit JPEG DC values are far inside this range.
  if (dc < -32768 || dc > 32767)
    reject(rpos_, "DC value ", dc, " of component ", c.id, " is out of range (block ", blocks_done_, ")");
  c.dc_pred = dc;
}

void JpegGuard::block_baseline(Component& c) {
  check_dc(c, decode(dc_[c.td]));
  const HuffTable& ac = ac_[c.ta];
  int k = 1;
  do {
    const int rs = decode(ac);
    const int s = rs & 15, r = rs >> 4;
    if (s == 0) {
      if (rs != 0xF0) break;  // end of block
      k += 16;                // ZRL: 16 zeros
    } else {
      k += r + 1;
      consume(s);
    }
  } while (k < 64);
}

void JpegGuard::block_dc_progressive(Component& c, size_t block) {
  if (ah_ == 0) {
    c.nonzero[block] = 0;  // a DC first scan starts the block afresh
    check_dc(c, decode(dc_[c.td]));
  } else {
    consume(1);  // refinement: one bit
  }
}

void JpegGuard::block_ac_first(Component& c, size_t block) {
  if (eob_run_ > 0) {
    --eob_run_;
    return;
  }
  const HuffTable& ac = ac_[c.ta];
  int k = ss_;
  do {
    const int rs = decode(ac);
    const int s = rs & 15, r = rs >> 4;
    if (s == 0) {
      if (r < 15) {  // EOBn: this block and the next 2^r - 1 + (r bits) blocks end here
        eob_run_ = 1 << r;
        if (r) eob_run_ += static_cast<int>(bits(r));
        --eob_run_;
        break;
      }
      k += 16;  // ZRL
    } else {
      k += r;
      const int v = receive_extend(s);
      // The decoder stores v * 2^Al as a 16-bit coefficient; whether that is nonzero decides
      // which later refinement bits it reads. Positions past 63 land on 63.
      const int16_t stored = static_cast<int16_t>(v * (1 << al_));
      const int z = std::min(k, 63);
      if (stored != 0)
        c.nonzero[block] |= uint64_t{1} << z;
      else
        c.nonzero[block] &= ~(uint64_t{1} << z);
      ++k;
    }
  } while (k <= se_);
}

void JpegGuard::block_ac_refine(Component& c, size_t block) {
  uint64_t& nz = c.nonzero[block];
  if (eob_run_ > 0) {
    --eob_run_;
    for (int k = ss_; k <= se_; ++k)
      if (nz >> k & 1) consume(1);  // correction bit
    return;
  }
  const HuffTable& ac = ac_[c.ta];
  int k = ss_;
  do {
    const int rs = decode(ac);
    const int s = rs & 15;
    int r = rs >> 4;
    bool new_nonzero = false;
    if (s == 0) {
      if (r < 15) {
        eob_run_ = (1 << r) - 1;
        if (r) eob_run_ += static_cast<int>(bits(r));
        r = 64;  // the rest of the band only gets correction bits
      }          // r == 15: skip 16 zero coefficients
    } else {
      if (s != 1) reject(rpos_, "magnitude category ", s, " in an AC refinement scan (must be 1), block ", blocks_done_);
      consume(1);  // sign
      new_nonzero = true;
    }
    while (k <= se_) {
      const int z = k++;
      if (nz >> z & 1) {
        consume(1);  // correction bit of an already-nonzero coefficient
      } else {
        if (r == 0) {
          if (new_nonzero) nz |= uint64_t{1} << z;
          break;
        }
        --r;
      }
    }
  } while (k <= se_);
}

void JpegGuard::decode_block(Component& c, size_t block) {
  if (!progressive_)
    block_baseline(c);
  else if (ss_ == 0)
    block_dc_progressive(c, block);
  else if (ah_ == 0)
    block_ac_first(c, block);
  else
    block_ac_refine(c, block);
  ++blocks_done_;
}

void JpegGuard::check_scan() {
  int64_t data_bytes = 0;
  for (const Interval& iv : intervals_) data_bytes += iv.bytes;
  if (data_bytes == 0) reject(sos_at_, "SOS is followed by no entropy-coded data");

  const bool single = scan_comps_.size() == 1;
  const Component& first = comps_[scan_comps_[0]];
  const int64_t mcus = single ? int64_t{first.bw} * first.bh : int64_t{mcu_x_} * mcu_y_;
  blocks_total_ = 0;
  for (int which : scan_comps_)
    blocks_total_ += single ? mcus : mcus * comps_[which].h * comps_[which].v;
  blocks_done_ = 0;

  const int ri = restart_interval_;
  const int64_t want = ri ? (mcus + ri - 1) / ri : 1;
  const int64_t have = static_cast<int64_t>(intervals_.size());
  if (ri == 0 && have > 1)
    reject(intervals_[0].end, "RST marker in the scan of the SOS at offset ", sos_at_,
           " but no restart interval (DRI) is defined");
  if (have > want)
    reject(intervals_[want].begin - 2, "the scan of the SOS at offset ", sos_at_, " has ", have,
           " restart intervals, more than the ", want, " its ", mcus, " MCUs need");
  if (have < want)
    reject(intervals_.back().end, "the scan of the SOS at offset ", sos_at_, " ends after ", have,
           " of ", want, " restart intervals (truncated)");

  if (progressive_)
    for (int which : scan_comps_) {
      Component& c = comps_[which];
      if (c.nonzero.empty())
        c.nonzero.assign(static_cast<size_t>(c.coeff_w) * static_cast<size_t>(c.coeff_h), 0);
    }

  size_t next = 0;
  start_interval(intervals_[next++]);
  int64_t in_interval = 0;
  for (int64_t m = 0; m < mcus; ++m) {
    if (single) {
      Component& c = comps_[scan_comps_[0]];
      const int64_t i = m % c.bw, j = m / c.bw;
      decode_block(c, static_cast<size_t>(i + j * c.coeff_w));
    } else {
      const int64_t i = m % mcu_x_, j = m / mcu_x_;
      for (int which : scan_comps_) {
        Component& c = comps_[which];
        for (int y = 0; y < c.v; ++y)
          for (int x = 0; x < c.h; ++x)
            decode_block(c, static_cast<size_t>((i * c.h + x) + (j * c.v + y) * c.coeff_w));
      }
    }
    if (ri && ++in_interval == ri && m + 1 < mcus) {
      start_interval(intervals_[next++]);
      in_interval = 0;
    }
  }
  for (int which : scan_comps_)
    if (!progressive_ || (ss_ == 0 && ah_ == 0)) comps_[which].coded = true;
}

void JpegGuard::run() {
  read_marker();
  if (marker_ != 0xD8) reject(marker_at_, "no SOI marker (found ", marker_name(marker_), ")");
  bool pending = false;  // marker_ already holds the marker that ended a scan
  while (true) {
    if (!pending) read_marker();
    pending = false;
    const int m = marker_;
    size_t begin = 0, end = 0;
    if (m == 0xD9) break;  // EOI
    switch (m) {
      case 0xC0:
      case 0xC1:
      case 0xC2:
        read_segment(begin, end);
        parse_sof(begin, end);
        break;
      case 0xC4:
        read_segment(begin, end);
        parse_dht(begin, end);
        break;
      case 0xDB:
        read_segment(begin, end);
        parse_dqt(begin, end);
        break;
      case 0xDD:
        read_segment(begin, end);
        if (end - begin != 2) reject(marker_at_, "DRI: length ", end - begin + 2, " (must be 4)");
        restart_interval_ = static_cast<int>(be16(b_ + begin));
        break;
      case 0xDC:
        read_segment(begin, end);
        if (!have_sof_) reject(marker_at_, "DNL before the frame header");
        if (end - begin != 2) reject(marker_at_, "DNL: length ", end - begin + 2, " (must be 4)");
        break;
      case 0xDA:
        read_segment(begin, end);
        parse_sos(begin, end);
        collect_intervals();
        check_scan();
        pending = true;
        break;
      case 0xD8:
        reject(marker_at_, "a second SOI marker");
      default:
        if ((m >= 0xE0 && m <= 0xEF) || m == 0xFE) {  // APPn, COM: skipped
          read_segment(begin, end);
          break;
        }
        if (m >= 0xD0 && m <= 0xD7) reject(marker_at_, marker_name(m), " marker outside a scan");
        reject(marker_at_, "unsupported ", marker_name(m),
               " (only baseline and progressive Huffman-coded JPEG is decoded)");
    }
  }
  if (!have_sof_) reject(marker_at_, "EOI before any frame header (SOF)");
  for (const Component& c : comps_)
    if (!c.coded)
      reject(marker_at_, "EOI, but component ", c.id,
             progressive_ ? " never had a DC first scan" : " was never coded in a scan");
}

// ---- PNG ------------------------------------------------------------------------------------

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

bool is_letter(uint8_t c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

}  // namespace

void guard_jpeg(const uint8_t* bytes, size_t size, const std::string& name, const ImageLimits& limits) {
  JpegGuard(bytes, size, display_name(name), limits).run();
}

void guard_png(const uint8_t* bytes, size_t size, const std::string& name, const ImageLimits& limits) {
  const std::string who = display_name(name);
  auto reject = [&](size_t offset, const auto&... parts) {
    fail("image '", who, "': corrupt or truncated PNG at offset ", offset, ": ", parts...);
  };
  if (size < 8 || std::memcmp(bytes, kPngSignature, 8) != 0) reject(0, "no PNG signature");
  size_t pos = 8;
  bool have_idat = false;
  for (bool first = true;; first = false) {
    if (size - pos < 8) reject(pos, "the file ends without an IEND chunk (truncated)");
    const uint32_t len = be32(bytes + pos);
    const uint8_t* type = bytes + pos + 4;
    const std::string tname(reinterpret_cast<const char*>(type), 4);
    if (!(is_letter(type[0]) && is_letter(type[1]) && is_letter(type[2]) && is_letter(type[3])))
      reject(pos, "chunk type bytes ", hex8(type[0]), " ", hex8(type[1]), " ", hex8(type[2]), " ",
             hex8(type[3]), " are not four letters");
    if (len > 0x7FFFFFFFu) reject(pos, "chunk '", tname, "' declares ", len, " bytes (more than 2^31-1)");
    if (static_cast<uint64_t>(len) + 4 > size - pos - 8)
      reject(pos, "chunk '", tname, "' declares ", len, " data bytes, past the end of the file (",
             size - pos - 8, " bytes left)");
    const uint8_t* data = bytes + pos + 8;
    if (first) {
      if (tname != "IHDR") reject(pos, "the first chunk is '", tname, "', not IHDR");
      if (len != 13) reject(pos, "IHDR has ", len, " bytes (must be 13)");
      const uint32_t w = be32(data), h = be32(data + 4);
      const int depth = data[8], color = data[9];
      if (w == 0 || h == 0 || w > 0x7FFFFFFFu || h > 0x7FFFFFFFu)
        reject(pos, "IHDR: invalid dimensions ", w, "x", h);
      check_dimensions(who, w, h, limits);
      bool ok = false;
      switch (color) {
        case 0: ok = depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16; break;
        case 3: ok = depth == 1 || depth == 2 || depth == 4 || depth == 8; break;
        case 2: case 4: case 6: ok = depth == 8 || depth == 16; break;
        default: break;
      }
      if (!ok) reject(pos, "IHDR: invalid colour type ", color, " / bit depth ", depth);
      if (data[10] != 0 || data[11] != 0 || data[12] > 1)
        reject(pos, "IHDR: unknown compression ", int(data[10]), ", filter ", int(data[11]),
               " or interlace ", int(data[12]), " method");
    } else if (tname == "IHDR") {
      reject(pos, "a second IHDR chunk");
    }
    if (tname == "IDAT") {
      // stb_image 2.27 calls memcpy(NULL, .., 0) on an empty IDAT before any image data.
      if (len == 0) reject(pos, "empty IDAT chunk (0 data bytes)");
      have_idat = true;
    }
    if (tname == "IEND") break;
    pos += 12 + static_cast<size_t>(len);
  }
  if (!have_idat) reject(pos, "IEND before any IDAT chunk (no image data)");
}

void guard_image(const uint8_t* bytes, size_t size, const std::string& name, const ImageLimits& limits) {
  if (size >= 8 && std::memcmp(bytes, kPngSignature, 8) == 0) return guard_png(bytes, size, name, limits);
  if (size >= 2 && bytes[0] == 0xFF) return guard_jpeg(bytes, size, name, limits);
  fail("image '", display_name(name), "': not a decodable JPEG/PNG image (unknown file signature)");
}

}  // namespace fer::data
