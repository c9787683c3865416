// Writes a small seed corpus for the fuzz targets (scripts/fuzz.sh):
//   <dir>/image/: PNGs and JPEGs (48x48, 20x30, 100x60) from stb_image_write, plus hand-built
//                 JPEGs that stb_image_write cannot produce: progressive (DC first, AC first with
//                 EOB runs and ZRL, DC refinement scans), 4:2:0 / 2:1 subsampling and restart
//                 intervals (DRI + RSTn), so the fuzzer starts inside those decoder paths
//   <dir>/csv/:   a small valid FER2013 CSV (three usages) and one with a bad row
// Usage: make_seeds <dir>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "data/fer2013.h"
#include "data/image.h"
#include "data/dataset.h"

using namespace fer::data;

namespace {
GrayImage pattern(int w, int h, int seed) {
  GrayImage g;
  g.width = w;
  g.height = h;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) g.pixels.push_back(static_cast<uint8_t>((x * 5 + y * 3 + seed * 40) % 256));
  return g;
}
Dataset faces(int n) {
  Dataset d;
  d.class_names = fer_class_names();
  for (int i = 0; i < n; ++i) d.add(pattern(48, 48, i).pixels.data(), i % kFerClasses);
  return d;
}
// ---- Hand-built JPEGs --------------------------------------------------------------------------
// Tiny Huffman tables (T.81 Annex C canonical codes), enough to code random small coefficients:
//   DC: "0" -> category 0, "10" -> category 1 (one magnitude bit follows)
//   AC: "0" -> EOB, "10" -> run 0 / size 1, "110" -> run 1 / size 1, "1110" -> ZRL (16 zeros),
//       "11110" -> EOB1 (progressive: this block and 1 + (one bit) more blocks end here)
struct Bits {
  std::vector<uint8_t> out;
  unsigned acc = 0;
  int n = 0;
  void put(unsigned v, int bits) {
    for (int i = bits - 1; i >= 0; --i) {
      acc = (acc << 1) | ((v >> i) & 1u);
      if (++n == 8) {
        out.push_back(static_cast<uint8_t>(acc));
        if (acc == 0xFF) out.push_back(0x00);  // byte stuffing
        acc = 0;
        n = 0;
      }
    }
  }
  void flush() {  // pad the last byte with ones
    while (n) put(1, 1);
  }
};

void segment(std::vector<uint8_t>& f, int marker, const std::vector<uint8_t>& payload) {
  f.push_back(0xFF);
  f.push_back(static_cast<uint8_t>(marker));
  const size_t len = payload.size() + 2;
  f.push_back(static_cast<uint8_t>(len >> 8));
  f.push_back(static_cast<uint8_t>(len));
  f.insert(f.end(), payload.begin(), payload.end());
}

struct HandJpeg {
  HandJpeg(int w_, int h_, bool progressive_, bool color_, int luma_v_, int restart_)
      : w(w_), h(h_), progressive(progressive_), color(color_), luma_v(luma_v_), restart(restart_) {}
  int w, h;
  bool progressive;
  bool color;             // 3 components, the first sampled 2x2 (4:2:0) or 2x1
  int luma_v;             // vertical sampling of the first component (1 or 2)
  int restart;            // DRI interval in MCUs, 0 = none
  std::mt19937 rng{1};

  struct Comp { int id, h, v, bw, bh; };
  std::vector<Comp> comps;
  int mcu_x = 0, mcu_y = 0;

  int coin(int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); }

  void dc_first(Bits& b) {
    if (coin(2)) b.put(0, 1);
    else { b.put(2, 2); b.put(static_cast<unsigned>(coin(2)), 1); }
  }
  // Codes positions k..se of one block (baseline: se = 63); returns the EOB run to skip after it.
  int ac_band(Bits& b, int k, int se, bool allow_eob_run) {
    while (k <= se) {
      const int c = coin(6);
      if (c == 0 && k + 16 <= se) { b.put(14, 4); k += 16; continue; }      // ZRL
      if (c == 1 && k + 1 <= se) { b.put(6, 3); b.put(coin(2), 1); k += 2; continue; }
      if (c <= 3) { b.put(2, 2); b.put(coin(2), 1); k += 1; continue; }
      if (c == 4 && allow_eob_run) { const int extra = coin(2); b.put(30, 5); b.put(extra, 1); return 1 + extra; }
      b.put(0, 1);  // EOB
      return 0;
    }
    return 0;
  }

  // Runs `per_mcu` over the MCUs of a scan, inserting RSTn every `restart` MCUs.
  template <typename F>
  void scan(std::vector<uint8_t>& f, int mcus, F per_mcu) {
    Bits b;
    int rst = 0;
    for (int m = 0; m < mcus; ++m) {
      per_mcu(b, m);
      if (restart && (m + 1) % restart == 0 && m + 1 < mcus) {
        b.flush();
        b.out.push_back(0xFF);
        b.out.push_back(static_cast<uint8_t>(0xD0 + (rst++ & 7)));
      }
    }
    b.flush();
    f.insert(f.end(), b.out.begin(), b.out.end());
  }

  std::vector<uint8_t> build() {
    const int nc = color ? 3 : 1;
    comps.clear();
    for (int i = 0; i < nc; ++i) comps.push_back({i + 1, i == 0 && color ? 2 : 1, i == 0 && color ? luma_v : 1, 0, 0});
    int hmax = 1, vmax = 1;
    for (const Comp& c : comps) { hmax = std::max(hmax, c.h); vmax = std::max(vmax, c.v); }
    mcu_x = (w + 8 * hmax - 1) / (8 * hmax);
    mcu_y = (h + 8 * vmax - 1) / (8 * vmax);
    for (Comp& c : comps) {
      c.bw = ((w * c.h + hmax - 1) / hmax + 7) / 8;
      c.bh = ((h * c.v + vmax - 1) / vmax + 7) / 8;
    }

    std::vector<uint8_t> f = {0xFF, 0xD8};
    std::vector<uint8_t> dqt = {0x00};
    for (int i = 0; i < 64; ++i) dqt.push_back(static_cast<uint8_t>(4 + i));
    segment(f, 0xDB, dqt);
    std::vector<uint8_t> sof = {8, static_cast<uint8_t>(h >> 8), static_cast<uint8_t>(h),
                                static_cast<uint8_t>(w >> 8), static_cast<uint8_t>(w), static_cast<uint8_t>(nc)};
    for (const Comp& c : comps) {
      sof.push_back(static_cast<uint8_t>(c.id));
      sof.push_back(static_cast<uint8_t>(c.h << 4 | c.v));
      sof.push_back(0);
    }
    segment(f, progressive ? 0xC2 : 0xC0, sof);
    segment(f, 0xC4, {0x00, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
    segment(f, 0xC4, {0x10, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01, 0x11, 0xF0, 0x10});
    if (restart) segment(f, 0xDD, {static_cast<uint8_t>(restart >> 8), static_cast<uint8_t>(restart)});

    auto sos = [&](const std::vector<int>& which, int ss, int se, int ah, int al) {
      std::vector<uint8_t> p = {static_cast<uint8_t>(which.size())};
      for (int i : which) { p.push_back(static_cast<uint8_t>(comps[i].id)); p.push_back(0x00); }
      p.push_back(static_cast<uint8_t>(ss));
      p.push_back(static_cast<uint8_t>(se));
      p.push_back(static_cast<uint8_t>(ah << 4 | al));
      segment(f, 0xDA, p);
    };
    std::vector<int> all;
    for (int i = 0; i < nc; ++i) all.push_back(i);
    // Blocks of one interleaved MCU, in decoding order.
    auto mcu_blocks = [&](const std::vector<int>& which) {
      int n = 0;
      for (int i : which) n += comps[i].h * comps[i].v;
      return n;
    };

    if (!progressive) {
      sos(all, 0, 63, 0, 0);
      scan(f, mcu_x * mcu_y, [&](Bits& b, int) {
        for (int k = 0; k < mcu_blocks(all); ++k) { dc_first(b); ac_band(b, 1, 63, false); }
      });
    } else {
      sos(all, 0, 0, 0, 1);  // DC first, interleaved, point transform 1
      scan(f, mcu_x * mcu_y, [&](Bits& b, int) {
        for (int k = 0; k < mcu_blocks(all); ++k) dc_first(b);
      });
      for (int i = 0; i < nc; ++i)  // AC first, one band per component (two for the first)
        for (const std::pair<int, int>& band : i == 0 ? std::vector<std::pair<int, int>>{{1, 5}, {6, 63}}
                                                      : std::vector<std::pair<int, int>>{{1, 63}}) {
          const int ss = band.first, se = band.second;  // (not a structured binding: lambdas use them)
          sos({i}, ss, se, 0, 0);
          const int blocks = comps[i].bw * comps[i].bh;
          int skip = 0;
          scan(f, blocks, [&](Bits& b, int m) {
            if (restart && m % restart == 0) skip = 0;  // EOB runs end at a restart
            if (skip > 0) { --skip; return; }
            const int left = std::min(blocks - 1 - m, restart ? restart - 1 - m % restart : blocks);
            skip = ac_band(b, ss, se, left >= 2);
          });
        }
      sos(all, 0, 0, 1, 0);  // DC refinement: one bit per block
      scan(f, mcu_x * mcu_y, [&](Bits& b, int) {
        for (int k = 0; k < mcu_blocks(all); ++k) b.put(coin(2), 1);
      });
    }
    f.push_back(0xFF);
    f.push_back(0xD9);
    return f;
  }
};

void write_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path.string(), std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds <dir>\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir / "image");
  std::filesystem::create_directories(dir / "csv");
  write_png((dir / "image" / "seed_48.png").string(), pattern(48, 48, 1));
  write_jpg((dir / "image" / "seed_48.jpg").string(), pattern(48, 48, 2), 90);
  write_png((dir / "image" / "seed_20x30.png").string(), pattern(20, 30, 3));
  write_jpg((dir / "image" / "seed_100x60.jpg").string(), pattern(100, 60, 4), 75);
  // Hand-built: {w, h, progressive, color, luma_v, restart}. Each must decode (checked below).
  const HandJpeg hand[] = {{48, 48, true, false, 1, 0},  {40, 24, true, true, 2, 0},
                           {33, 17, true, true, 1, 3},   {48, 48, false, true, 2, 2},
                           {20, 30, false, false, 1, 5}, {64, 16, true, false, 1, 4}};
  for (const HandJpeg& spec : hand) {
    HandJpeg j = spec;
    const std::vector<uint8_t> bytes = j.build();
    const std::string name = std::string("seed_hand_") + (j.progressive ? "prog_" : "base_") +
                             std::to_string(j.w) + "x" + std::to_string(j.h) + (j.color ? "_color" : "_gray") +
                             "_rst" + std::to_string(j.restart) + ".jpg";
    write_bytes(dir / "image" / name, bytes);
    const GrayImage img = decode_image(bytes.data(), bytes.size(), name);  // throws if not valid
    if (img.width != j.w || img.height != j.h) {
      std::fprintf(stderr, "make_seeds: %s decoded as %dx%d\n", name.c_str(), img.width, img.height);
      return 1;
    }
  }

  const Dataset d = faces(2);
  std::ofstream((dir / "csv" / "seed_ok.csv").string(), std::ios::binary)
      << format_fer_csv(d, Split::Train) << format_fer_csv(faces(1), Split::Val, false)
      << format_fer_csv(faces(1), Split::Test, false);
  std::string bad = format_fer_csv(faces(1), Split::Train);
  bad += "9,1 2 3,PublicTest\n,,\n";
  std::ofstream((dir / "csv" / "seed_bad.csv").string(), std::ios::binary) << bad;
  std::ofstream((dir / "csv" / "seed_header.csv").string(), std::ios::binary)
      << "Usage,pixels,emotion\r\nTraining,\"0 1 2\",3\r\n";
  return 0;
}
