// Dataset: labelled 48x48 grayscale faces cached in memory, and the transforms that select from
// it (subset, dropping a class with id remapping, a seeded per-class cap, a seeded stratified
// train/validation split).
//
// Format: pixels is N x 48 x 48 uint8, contiguous, image i at pixels[i * 2304] (row-major, row 0
// at the top); labels[i] is a class id in 0..num_classes()-1; class_names[id] names it. Readers
// (data/fer2013.h) produce the 7 FER2013 classes in FER order (0 angry, 1 disgust, 2 fear,
// 3 happy, 4 sad, 5 surprise, 6 neutral). `skipped` / `problems` report what a reader with
// skip_bad left out.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace fer::data {

struct Dataset {
  std::vector<uint8_t> pixels;           // size() * kFacePixels
  std::vector<int> labels;               // size()
  std::vector<std::string> class_names;  // num_classes()
  // Where each item came from ("val/happy/PublicTest_123.jpg", "fer2013.csv:1234"): either empty
  // (a source that has no names, such as synthetic data) or one entry per item.
  std::vector<std::string> sources;
  int64_t skipped = 0;                   // bad items a reader skipped (skip_bad)
  std::vector<std::string> problems;     // why (at most kMaxProblems messages are kept)

  static constexpr size_t kMaxProblems = 100;

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int num_classes() const { return static_cast<int>(class_names.size()); }
  const uint8_t* image(int64_t i) const { return pixels.data() + i * kFacePixels; }
  // The source of item i, or "" when the dataset keeps none.
  const std::string& source(int64_t i) const;
  void add(const uint8_t* face, int label, std::string source = {});  // append one 48x48 face
  void note_problem(std::string message);    // skipped++ is the caller's business
  void check() const;                        // throws fer::Error if sizes or labels disagree
};

// Images per class id (length num_classes()).
std::vector<int64_t> class_counts(const Dataset& data);

// The given items, in the given order (indices may repeat).
Dataset subset(const Dataset& data, const std::vector<int64_t>& indices);

// Remove every item of the named class (case-insensitive) and renumber the remaining classes
// 0..K-2 in their old order; class_names loses that name. Throws if the name is unknown.
Dataset drop_class(const Dataset& data, const std::string& class_name);
// The 6-class FER variant: 0 angry, 1 fear, 2 happy, 3 sad, 4 surprise, 5 neutral.
inline Dataset drop_disgust(const Dataset& data) { return drop_class(data, "disgust"); }

// At most `cap` items per class, chosen uniformly at random (seeded); items keep their order.
Dataset cap_per_class(const Dataset& data, int64_t cap, uint64_t seed);

// Stratified split: from each class, round(count * val_fraction) items chosen at random (seeded)
// go to `val`, the rest to `train`; both keep the original order.
struct TrainVal {
  Dataset train;
  Dataset val;
};
TrainVal stratified_split(const Dataset& data, double val_fraction, uint64_t seed);

}  // namespace fer::data
