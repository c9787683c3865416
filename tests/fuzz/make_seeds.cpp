// Writes a small seed corpus for the fuzz targets (scripts/fuzz.sh):
//   <dir>/image/: PNGs and JPEGs (48x48, 20x30, 100x60) from stb_image_write, plus hand-built
//                 JPEGs that stb_image_write cannot produce: progressive (DC first, AC first with
//                 EOB runs and ZRL, DC refinement scans), 4:2:0 / 2:1 subsampling and restart
//                 intervals (DRI + RSTn), so the fuzzer starts inside those decoder paths
//   <dir>/csv/:   a small valid FER2013 CSV (three usages) and one with a bad row
//   <dir>/safetensors/: small files of every dtype the reader takes, a scalar and an empty tensor,
//                 and the shipped checkpoint's header (its metadata: model spec, CRC-32s) over
//                 a few of its own small tensors, re-laid out (the whole file is 7 MB)
//   <dir>/cascade/: a small cascade with upright and tilted features, stumps and a deeper tree
//   <dir>/serve/: HTTP requests: raw and multipart uploads, ?detect=, the video route, and the
//                 headers the pre-routing checks refuse (chunked, gzip, bad Content-Length)
//   <dir>/list/:  a --list file with comments, blank lines, CRLF and indented paths
//   <dir>/checkpoint/: checkpoint metadata as JSON: the shipped checkpoint's own, the same with
//                 what a resumable run adds (position, AdamW or SGD state, fine-tuning plan, cache
//                 and plateau keys, settings), a backbone's spec and a spec from before the
//                 backbone keys existed
// Usage: make_seeds <dir> [<checkpoint.safetensors>]
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <utility>
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


// ---- Safetensors, by hand: 8-byte little-endian header length, JSON header, data -------------
std::vector<uint8_t> safetensors_bytes(const nlohmann::ordered_json& header, const std::vector<uint8_t>& data) {
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::vector<uint8_t> out(8);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  out.insert(out.end(), text.begin(), text.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// Appends a tensor of `dtype` whose elements are `bytes_per` bytes each, counting up.
void add_tensor(nlohmann::ordered_json& header, std::vector<uint8_t>& data, const std::string& name,
                const std::string& dtype, const std::vector<int64_t>& shape, int bytes_per) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const size_t begin = data.size();
  for (int64_t i = 0; i < n * bytes_per; ++i) data.push_back(static_cast<uint8_t>(i * 7 + 1));
  header[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, data.size()}}};
}

void write_safetensors_seeds(const std::filesystem::path& out, const std::string& checkpoint) {
  {
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    std::vector<uint8_t> data;
    h["__metadata__"] = {{"format", "pt"}};
    add_tensor(h, data, "a", "F32", {2, 3}, 4);
    add_tensor(h, data, "b", "F32", {}, 4);
    add_tensor(h, data, "c", "F32", {0, 5}, 4);
    write_bytes(out / "seed_f32.safetensors", safetensors_bytes(h, data));
  }
  {
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    std::vector<uint8_t> data;
    add_tensor(h, data, "bf16", "BF16", {3}, 2);
    add_tensor(h, data, "f16", "F16", {2, 2}, 2);
    add_tensor(h, data, "f64", "F64", {2}, 8);
    add_tensor(h, data, "i32", "I32", {1, 1, 2}, 4);
    add_tensor(h, data, "i64", "I64", {1}, 8);
    write_bytes(out / "seed_dtypes.safetensors", safetensors_bytes(h, data));
  }
  // The shipped checkpoint's metadata over its smallest tensors (real names, real CRC-32 keys).
  std::ifstream in(checkpoint, std::ios::binary);
  uint64_t n = 0;
  if (!in.read(reinterpret_cast<char*>(&n), 8) || n > (1u << 20)) return;
  std::string text(n, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(n))) return;
  const nlohmann::json real = nlohmann::json::parse(text, nullptr, false);
  if (!real.is_object()) return;
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  std::vector<uint8_t> data;
  if (real.contains("__metadata__")) h["__metadata__"] = real["__metadata__"];
  int kept = 0;
  for (const auto& [name, entry] : real.items()) {
    if (name == "__metadata__" || !entry.contains("data_offsets")) continue;
    const uint64_t begin = entry["data_offsets"][0], end = entry["data_offsets"][1];
    if (end - begin > 256 || kept == 6) continue;
    std::vector<uint8_t> bytes(end - begin);
    in.seekg(static_cast<std::streamoff>(8 + n + begin));
    if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()))) return;
    h[name] = {{"dtype", entry["dtype"]}, {"shape", entry["shape"]}, {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data.insert(data.end(), bytes.begin(), bytes.end());
    ++kept;
  }
  write_bytes(out / "seed_checkpoint_head.safetensors", safetensors_bytes(h, data));
}

// ---- Checkpoint metadata (fuzz_checkpoint): the "__metadata__" object as JSON ---------------------
void write_json(const std::filesystem::path& path, const nlohmann::ordered_json& j) {
  std::ofstream(path.string(), std::ios::binary) << j.dump(1) << "\n";
}

void write_checkpoint_seeds(const std::filesystem::path& out, const std::string& checkpoint) {
  // A spec of before the backbone keys (head, hidden, bn_eps, preprocess.crop), and a backbone's.
  nlohmann::ordered_json old_spec = {
      {"format", "fer-engine-checkpoint/1"}, {"model", "fer_seed_cnn"}, {"num_classes", "6"},
      {"in_channels", "1"}, {"input_size", "48"}, {"dropout", "0.250000"}, {"stage_dropout", "0.000000"},
      {"class_names", "angry,fear,happy,sad,surprise,neutral"}, {"preprocess.equalize", "1"},
      {"preprocess.standardize", "0"}, {"preprocess.mean", "0.000000"}, {"preprocess.std", "1.000000"}};
  write_json(out / "seed_old_spec.json", old_spec);
  nlohmann::ordered_json backbone = old_spec;
  backbone["model"] = "mobilenet_v2_keras";
  backbone["input_size"] = "32";
  backbone["head"] = "flatten";
  backbone["hidden"] = "16,8";
  backbone["bn_eps"] = "0.00100000005";
  backbone["preprocess.crop"] = "40";
  backbone["calibration.temperature"] = "1.25";
  write_json(out / "seed_backbone.json", backbone);

  // The shipped checkpoint's metadata (model spec, calibration, CRC-32 table), read from its header.
  std::ifstream in(checkpoint, std::ios::binary);
  uint64_t n = 0;
  if (!in.read(reinterpret_cast<char*>(&n), 8) || n > (1u << 20)) return;
  std::string text(n, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(n))) return;
  const nlohmann::ordered_json real = nlohmann::ordered_json::parse(text, nullptr, false);
  if (!real.is_object() || !real.contains("__metadata__")) return;
  const nlohmann::ordered_json shipped = real["__metadata__"];
  write_json(out / "seed_shipped.json", shipped);

  // What OUT/last.safetensors of a fer_train run over it adds (apps/training/trainer.cpp: the run's
  // position, the optimizer's state, the fine-tuning plan, the cache and the settings).
  nlohmann::ordered_json last = shipped;
  const std::pair<const char*, const char*> position[] = {
      {"train.epoch", "2"}, {"train.step_in_epoch", "137"}, {"train.global_step", "1035"},
      {"train.best_val_acc", "0.53218166620228474"}, {"train.best_epoch", "1"}, {"train.bad_epochs", "0"},
      {"train.loss_sum", "10521.383056640625"}, {"train.correct", "4012"}, {"train.seen", "8768"},
      {"train.lr", "0.00095105651830881834"}, {"train.rng", "10379476174985470088"},
      {"train.best_ema_val_acc", "-1"}, {"train.best_ema_epoch", "0"}, {"train.ema_count", "0"},
      {"train.swa_count", "0"}, {"finetune.blocks", "8"}, {"finetune.trainable", "11111111"},
      {"finetune.lr_scales", "1,1,1,1,1,1,1,1"}, {"cache.features", "0"}, {"cache.aug_passes", "0"},
      {"settings.model", "fer_vgg_small"}, {"settings.epochs", "40"}, {"settings.lr", "0.001"},
      {"settings.optimizer", "adamw"}, {"settings.schedule", "cosine"}, {"settings.seed", "1"}};
  for (const auto& [k, v] : position) last[k] = v;
  const int kParams = 28;  // fer_vgg_small's parameter tensors
  const std::pair<const char*, const char*> adamw[] = {
      {"optim.type", "AdamW"}, {"optim.lr", "0.00095105651830881834"}, {"optim.initial_lr", "0.0010000000474974513"},
      {"optim.weight_decay", "0.0099999997764825821"}, {"optim.num_groups", "1"}, {"optim.group.0.name", ""},
      {"optim.group.0.num_params", "28"}, {"optim.group.0.lr", "0.00095105651830881834"},
      {"optim.group.0.initial_lr", "0.0010000000474974513"}, {"optim.group.0.weight_decay", "0.0099999997764825821"},
      {"optim.num_params", "28"}, {"optim.beta1", "0.89999997615814209"}, {"optim.beta2", "0.99900001287460327"},
      {"optim.eps", "9.9999999392252903e-09"}};
  nlohmann::ordered_json last_adamw = last;
  for (const auto& [k, v] : adamw) last_adamw[k] = v;
  for (int i = 0; i < kParams; ++i) last_adamw["optim." + std::to_string(i) + ".step"] = "1035";
  write_json(out / "seed_last_adamw.json", last_adamw);
  // SGD with ReduceLROnPlateau, and the plan of a frozen backbone (phase 1 of fine-tuning).
  nlohmann::ordered_json last_sgd = last;
  for (const auto& [k, v] : adamw)
    if (std::string(k).find("beta") == std::string::npos && std::string(k) != "optim.eps") last_sgd[k] = v;
  last_sgd["optim.type"] = "SGD";
  last_sgd["optim.momentum"] = "0.89999997615814209";
  last_sgd["optim.dampening"] = "0";
  last_sgd["optim.nesterov"] = "1";
  for (int i = 0; i < kParams; ++i) last_sgd["optim." + std::to_string(i) + ".step"] = "1035";
  last_sgd["finetune.trainable"] = "00000000";
  last_sgd["plateau.best"] = "0.53218166620228474";
  last_sgd["plateau.num_bad_epochs"] = "1";
  last_sgd["plateau.cooldown_counter"] = "0";
  last_sgd["plateau.last_epoch"] = "2";
  write_json(out / "seed_last_sgd_frozen.json", last_sgd);
}

// ---- A Haar cascade in OpenCV's new-style XML ---------------------------------------------------
const char* kSeedCascade = R"(<?xml version="1.0"?>
<!-- a small cascade: two stages of stumps, then a two-node tree; one tilted feature -->
<opencv_storage>
<cascade type_id="opencv-cascade-classifier"><stageType>BOOST</stageType>
  <featureType>HAAR</featureType>
  <height>12</height>
  <width>12</width>
  <stageParams><maxWeakCount>2</maxWeakCount></stageParams>
  <featureParams><maxCatCount>0</maxCatCount></featureParams>
  <stageNum>3</stageNum>
  <stages>
    <_>
      <maxWeakCount>2</maxWeakCount>
      <stageThreshold>-1.5</stageThreshold>
      <weakClassifiers>
        <_><internalNodes>0 -1 0 1.2e-02</internalNodes><leafValues>-0.8 0.7</leafValues></_>
        <_><internalNodes>0 -1 1 -3.5e-03</internalNodes><leafValues>0.5 -0.6</leafValues></_></weakClassifiers></_>
    <_>
      <stageThreshold>-0.9</stageThreshold>
      <weakClassifiers>
        <_><internalNodes>0 -1 2 5.0e-03</internalNodes><leafValues>-0.4 0.9</leafValues></_></weakClassifiers></_>
    <_>
      <stageThreshold>-2.0</stageThreshold>
      <weakClassifiers>
        <_>
          <internalNodes>
            1 -1 0 1.0e-02 0 -2 3 -2.0e-03</internalNodes>
          <leafValues>-0.5 0.25 0.75</leafValues></_></weakClassifiers></_></stages>
  <features>
    <_><rects><_>0 0 12 6 -1.</_><_>0 6 12 6 1.</_></rects></_>
    <_><rects><_>2 2 4 8 -1.</_><_>6 2 4 8 2.</_></rects><tilted>0</tilted></_>
    <_><rects><_>1 1 10 10 -1.</_><_>3 3 6 6 2.</_><_>5 5 2 2 1.</_></rects></_>
    <_><rects><_>6 0 4 4 -1.</_><_>6 2 2 2 2.</_></rects><tilted>1</tilted></_></features></cascade>
</opencv_storage>
)";

// ---- HTTP requests to fer_serve -----------------------------------------------------------------
std::string http(const std::string& head, const std::string& body) {
  std::string r = head;
  if (body.size() || head.rfind("POST", 0) == 0) r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + body;
}

void write_serve_seeds(const std::filesystem::path& out, const std::string& jpeg) {
  auto put = [&](const char* name, const std::string& text) {
    std::ofstream((out / name).string(), std::ios::binary) << text;
  };
  put("raw_jpeg.http", http("POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n", jpeg));
  put("raw_detect0.http", http("POST /api/predict?detect=0&x=%41%zz HTTP/1.1\r\nHost: x\r\nContent-Type: Image/PNG; q=1\r\n", jpeg));
  const std::string boundary = "----fer7MA4YWxk";
  const std::string form = "--" + boundary + "\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--" +
                           boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"face.jpg\"\r\n"
                           "Content-Type: image/jpeg\r\n\r\n" + jpeg + "\r\n--" + boundary + "--\r\n";
  put("multipart.http", http("POST /api/predict?detect=1 HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=" +
                             boundary + "\r\n", form));
  put("multipart_video.http", http("POST /api/video HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=\"" +
                                   boundary + "\"\r\n", form));
  put("video.http", http("POST /api/video HTTP/1.1\r\nHost: x\r\nContent-Type: video/mp4\r\n", std::string(64, '\x11')));
  put("chunked.http", "POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n");
  put("gzip.http", http("POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Encoding: gzip\r\n", "xyz"));
  put("bad_length.http", "POST /api/video HTTP/1.1\r\nHost: x\r\nContent-Type: video/webm\r\nContent-Length: 99999999999\r\n\r\n");
  put("get_predict.http", "GET /api/predict?detect=maybe HTTP/1.1\r\nHost: x\r\n\r\n");
  put("healthz.http", "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  put("form_urlencoded.http", http("POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n", "a=1&b=%20"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: make_seeds <dir> [<checkpoint.safetensors>]\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir / "image");
  for (const char* target : {"csv", "safetensors", "cascade", "serve", "list", "checkpoint"})
    std::filesystem::create_directories(dir / target);
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

  write_safetensors_seeds(dir / "safetensors", argc == 3 ? argv[2] : "");
  write_checkpoint_seeds(dir / "checkpoint", argc == 3 ? argv[2] : "");
  std::ofstream((dir / "cascade" / "seed_small.xml").string(), std::ios::binary) << kSeedCascade;
  // A small JPEG for the upload requests (written by stb_image_write, read back).
  const std::filesystem::path face = dir / "serve" / "face.tmp";
  write_jpg(face.string(), pattern(8, 8, 5), 50);
  std::ifstream face_in(face.string(), std::ios::binary);
  const std::string jpeg((std::istreambuf_iterator<char>(face_in)), std::istreambuf_iterator<char>());
  face_in.close();
  std::filesystem::remove(face);
  write_serve_seeds(dir / "serve", jpeg);
  std::ofstream((dir / "list" / "seed_list.txt").string(), std::ios::binary)
      << "# photos\n\nphotos/a.jpg\r\n   indented/b.png  \n\t# a comment\n/abs/c d.jpeg\nlast-without-newline.jpg";
  return 0;
}
