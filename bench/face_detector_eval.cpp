// The face detector, measured: precision and recall at IoU 0.5 and time per photo, for several
// detector configurations on one labelled set, side by side (README "How well faces are found").
//
// The set (data/face_scenes.h): `--scenes` photos generated from opencv-doc's photos without
// faces and from frames of its video of a tree in the wind, each with 3 to 8 FER2013 val/ faces
// pasted in at known boxes, widths cycling over
// 800, 1600 and 3200 pixels (a phone photo is 3000-4000 px wide: small faces in large photos),
// face sides from 24 px to a fifth of the width; plus the background photos themselves at their
// own size, where every detection is a false positive ("a face in a paving stone").
//
//   face_detector_eval [--data ../shared/fer2013] [--scenes 30] [--seed 1] [--out DIR]
//
// Writes DIR/detector.md (the table) and DIR/scene_<k>.png (the first scenes, to look at).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

#include "apps/cli/args.h"
#include "data/face_finder.h"
#include "data/face_scenes.h"
#include "data/fer2013.h"
#include "data/image.h"
#include "data/video.h"
#include "engine/error.h"

using namespace fer;
using namespace fer::data;
namespace fs = std::filesystem;

namespace {

// opencv-doc photos with no human face in them (checked by eye on a contact sheet: basketball1
// and left01 show people, graf1 a painted face, so they are not here), of varied texture:
// buildings, streets, fruit, a painting, circuit boards, toys, text.
const char* kBackgrounds[] = {
    "aero1.jpg", "apple.jpg", "blox.jpg", "board.jpg", "building.jpg", "butterfly.jpg",
    "fruits.jpg", "aloeL.jpg", "home.jpg", "leuvenA.jpg", "orange.jpg", "pic1.png",
    "pic3.png", "pic5.png", "smarties.png", "starry_night.jpg", "stuff.jpg", "sudoku.png",
    "box_in_scene.png", "leuvenB.jpg", "notes.png", "rubberwhale1.png", "text_motion.jpg", "ela_original.jpg"};

// opencv-doc videos with no person in them: a few of their frames are backgrounds too (blurred,
// compressed video frames rather than photos). Megamind and vtest have people, so they are not here.
const char* kVideoBackgrounds[] = {"tree.avi"};
constexpr int kFramesPerVideo = 4, kFrameStep = 15;

struct Config {
  std::string name, description;
  FaceFinderOptions options;
  std::string frontal;
};

// Recall by face side: small (< 48 px), medium (48-95), large (>= 96).
int size_bucket(const Rect& r) { return r.width < 48 ? 0 : r.width < 96 ? 1 : 2; }

struct Result {
  DetectionCounts scenes, backgrounds;
  int64_t found_by_size[3] = {0, 0, 0}, faces_by_size[3] = {0, 0, 0};
  double seconds = 0;
  int64_t images = 0;
  double megapixels = 0;
  double recall_by_size(int b) const {
    return faces_by_size[b] == 0 ? 1.0 : static_cast<double>(found_by_size[b]) / static_cast<double>(faces_by_size[b]);
  }
};

int run(int argc, char** argv) {
  cli::Args args("face_detector_eval", "Precision, recall and speed of the face detector on a generated labelled set.");
  std::string data_root = "../shared/fer2013", out_dir = "runs/detector", doc = "/usr/share/doc/opencv-doc/examples/data";
  std::string only;
  int scenes = 30;
  uint64_t seed = 1;
  args.bind({{"data", data_root, "FER2013 root (faces from its val/ split)", &data_root},
             {"backgrounds", doc, "folder of the opencv-doc photos used as backgrounds", &doc},
             {"scenes", "30", "generated photos", &scenes},
             {"seed", "1", "seed of the generator", &seed},
             {"out", out_dir, "output folder", &out_dir},
             {"configs", "", "comma-separated configurations to run (default: all)", &only}});
  args.parse(argc, argv);

  const Dataset val = load_fer2013(data_root, Split::Val);
  std::vector<GrayImage> faces;
  for (int64_t i = 0; i < val.size(); ++i)
    faces.push_back(GrayImage{48, 48, std::vector<uint8_t>(val.image(i), val.image(i) + 48 * 48)});
  std::vector<GrayImage> backgrounds;
  for (const char* name : kBackgrounds) {
    const fs::path p = fs::path(doc) / name;
    if (fs::exists(p)) backgrounds.push_back(read_image(p.string()));
  }
  for (const char* name : kVideoBackgrounds) {
    const fs::path p = fs::path(doc) / name;
    if (!fs::exists(p)) continue;
    VideoReader reader(p.string(), VideoSampling{kFrameStep, 0});
    VideoFrame frame;
    for (int i = 0; i < kFramesPerVideo && reader.next(frame); ++i) backgrounds.push_back(frame.image);
  }
  FER_CHECK(!backgrounds.empty(), "no background photos in ", doc, " (Debian package opencv-doc)");

  std::vector<FaceScene> set;
  const int widths[] = {800, 1600, 3200};
  for (int k = 0; k < scenes; ++k) {
    FaceSceneOptions o;
    o.width = widths[k % 3];
    o.max_side = o.width / 5;
    // Faces taken far apart in val/ so that each scene mixes people and expressions.
    set.push_back(compose_face_scene(backgrounds[static_cast<size_t>(k) % backgrounds.size()], faces,
                                     static_cast<size_t>(k) * 97, seed * 1000003 + static_cast<uint64_t>(k), o));
  }
  fs::create_directories(out_dir);
  for (int k = 0; k < std::min(scenes, 3); ++k)
    write_png((fs::path(out_dir) / ("scene_" + std::to_string(k) + ".png")).string(), set[static_cast<size_t>(k)].image);
  int64_t truth = 0;
  for (const FaceScene& s : set) truth += static_cast<int64_t>(s.faces.size());

  // The cascades by file name (the apps' default is one of them: default_cascade_path()).
  const fs::path dir = fs::path(default_cascade_path()).parent_path();
  const std::string frontal = (dir / "haarcascade_frontalface_default.xml").string();
  auto analyzer_default = [] {  // what fer_predict used before this measurement
    FaceFinderOptions o;
    o.detect.min_neighbors = 4;
    o.detect.min_size = 24;
    o.detect.max_side = 1024;
    o.merge = false;
    return o;
  };
  const std::string alt2 = (dir / "haarcascade_frontalface_alt2.xml").string();
  const std::string profile = (dir / "haarcascade_profileface.xml").string();
  auto config = [&](const std::string& name, const std::string& what, const std::string& cascade, bool merge,
                    int max_side, const std::string& profile_cascade = "") {
    Config c{name, what, analyzer_default(), cascade};
    c.options.merge = merge;
    c.options.detect.max_side = max_side;
    c.options.profile_cascade = profile_cascade;
    return c;
  };
  std::vector<Config> configs = {
      config("today", "frontal_default, photos shrunk to 1024 px, OpenCV grouping", frontal, false, 1024),
      config("merge", "+ duplicate boxes merged", frontal, true, 1024),
      config("full_res", "+ photos searched at up to 4096 px", frontal, true, 4096),
      config("alt2_1024", "frontalface_alt2, merged, 1024 px", alt2, true, 1024),
      config("alt2_2048", "frontalface_alt2, merged, up to 2048 px", alt2, true, 2048),
      config("alt2", "frontalface_alt2, merged, up to 4096 px", alt2, true, 4096),
      config("alt2_profile", "alt2 + the profile cascade (both sides), merged, 4096 px", alt2, true, 4096, profile)};
  if (!only.empty()) {
    std::vector<Config> chosen;
    for (const Config& c : configs)
      if (("," + only + ",").find("," + c.name + ",") != std::string::npos) chosen.push_back(c);
    FER_CHECK(!chosen.empty(), "--configs '", only, "' names none of the configurations");
    configs = chosen;
  }

  // Every configuration's boxes and the truth, one scene per line, for a closer look.
  std::ofstream dump(fs::path(out_dir) / "boxes.txt");
  std::vector<Result> results;
  for (const Config& c : configs) {
    const FaceFinder finder(c.frontal, c.options);
    Result r;
    const auto t0 = std::chrono::steady_clock::now();
    for (const FaceScene& s : set) {
      std::vector<bool> found;
      const std::vector<Rect> boxes = finder.find(s.image);
      r.scenes += match_detections(boxes, s.faces, 0.5, &found);
      if (dump) {
        dump << c.name << " " << (&s - set.data());
        for (const Rect& b : boxes) dump << " " << b.x << "," << b.y << "," << b.width << "," << b.height;
        dump << " | truth";
        for (const Rect& b : s.faces) dump << " " << b.x << "," << b.y << "," << b.width << "," << b.height;
        dump << "\n";
      }
      for (size_t t = 0; t < s.faces.size(); ++t) {
        ++r.faces_by_size[size_bucket(s.faces[t])];
        r.found_by_size[size_bucket(s.faces[t])] += found[t];
      }
      r.megapixels += s.image.width * static_cast<double>(s.image.height) / 1e6;
    }
    for (const GrayImage& b : backgrounds) {
      r.backgrounds += match_detections(finder.find(b), {});
      r.megapixels += b.width * static_cast<double>(b.height) / 1e6;
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.images = static_cast<int64_t>(set.size() + backgrounds.size());
    std::fprintf(stderr, "%-9s precision %.3f recall %.3f (small %.2f, medium %.2f, large %.2f) | %lld false on %zu photos without faces | %.0f ms/photo\n",
                 c.name.c_str(), r.scenes.precision(), r.scenes.recall(), r.recall_by_size(0),
                 r.recall_by_size(1), r.recall_by_size(2),
                 static_cast<long long>(r.backgrounds.false_positives), backgrounds.size(),
                 1000 * r.seconds / static_cast<double>(r.images));
    results.push_back(r);
  }

  std::ofstream md(fs::path(out_dir) / "detector.md");
  md << "Labelled set: " << set.size() << " generated photos (800/1600/3200 px wide) holding " << truth
     << " faces, plus " << backgrounds.size() << " opencv-doc photos and video frames without faces (seed " << seed << ").\n\n"
     << "| detector | what changes | precision | recall | F1 | recall of faces < 48 px / 48-95 / >= 96 | false faces on the "
     << backgrounds.size() << " face-free photos | ms per photo |\n|---|---|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < configs.size(); ++i) {
    const Result& r = results[i];
    const double p = r.scenes.precision(), rc = r.scenes.recall();
    char line[512];
    std::snprintf(line, sizeof line, "| %s | %s | %.3f | %.3f | %.3f | %.2f / %.2f / %.2f | %lld | %.0f |\n",
                  configs[i].name.c_str(), configs[i].description.c_str(), p, rc,
                  p + rc > 0 ? 2 * p * rc / (p + rc) : 0.0, r.recall_by_size(0), r.recall_by_size(1),
                  r.recall_by_size(2),
                  static_cast<long long>(r.backgrounds.false_positives), 1000 * r.seconds / static_cast<double>(r.images));
    md << line;
  }
  std::fprintf(stderr, "wrote %s\n", (fs::path(out_dir) / "detector.md").string().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cli::run_main("face_detector_eval", run, argc, argv); }
