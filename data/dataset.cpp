// Dataset bookkeeping and the selection transforms (subset, drop_class, cap, stratified split).
#include "data/dataset.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "engine/error.h"
#include "engine/random.h"

namespace fer::data {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Indices of each class, in dataset order.
std::vector<std::vector<int64_t>> indices_by_class(const Dataset& data) {
  std::vector<std::vector<int64_t>> by(data.num_classes());
  for (int64_t i = 0; i < data.size(); ++i) by[data.labels[i]].push_back(i);
  return by;
}

// Seeded Fisher-Yates shuffle.
void shuffle(std::vector<int64_t>& v, Generator& gen) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[gen.below(i)]);
}

Dataset empty_like(const Dataset& data) {
  Dataset out;
  out.class_names = data.class_names;
  out.skipped = data.skipped;
  out.problems = data.problems;
  return out;
}

}  // namespace

void Dataset::add(const uint8_t* face, int label, std::string source) {
  pixels.insert(pixels.end(), face, face + kFacePixels);
  labels.push_back(label);
  if (source.empty() && sources.empty()) return;  // a dataset without names stays without
  sources.resize(labels.size() - 1);                // earlier items without a name get ""
  sources.push_back(std::move(source));
}

const std::string& Dataset::source(int64_t i) const {
  static const std::string none;
  return static_cast<size_t>(i) < sources.size() ? sources[static_cast<size_t>(i)] : none;
}

void Dataset::note_problem(std::string message) {
  if (problems.size() < kMaxProblems) problems.push_back(std::move(message));
}

void Dataset::check() const {
  FER_CHECK(pixels.size() == labels.size() * kFacePixels, "dataset: ", pixels.size(),
            " pixel bytes for ", labels.size(), " labels (expected ", kFacePixels, " per image)");
  FER_CHECK(sources.empty() || sources.size() == labels.size(), "dataset: ", sources.size(),
            " sources for ", labels.size(), " items (expected none or one per item)");
  for (size_t i = 0; i < labels.size(); ++i)
    FER_CHECK(labels[i] >= 0 && labels[i] < num_classes(), "dataset: label ", labels[i],
              " of item ", i, " is outside 0..", num_classes() - 1);
}

std::vector<int64_t> class_counts(const Dataset& data) {
  std::vector<int64_t> counts(data.num_classes(), 0);
  for (int label : data.labels) {
    FER_CHECK(label >= 0 && label < data.num_classes(), "class_counts: label ", label,
              " outside 0..", data.num_classes() - 1);
    ++counts[label];
  }
  return counts;
}

Dataset subset(const Dataset& data, const std::vector<int64_t>& indices) {
  Dataset out = empty_like(data);
  out.pixels.reserve(indices.size() * kFacePixels);
  out.labels.reserve(indices.size());
  for (int64_t i : indices) {
    FER_CHECK(i >= 0 && i < data.size(), "subset: index ", i, " outside 0..", data.size() - 1);
    out.add(data.image(i), data.labels[i], data.source(i));
  }
  return out;
}

Dataset drop_class(const Dataset& data, const std::string& class_name) {
  int dropped = -1;
  for (int c = 0; c < data.num_classes(); ++c)
    if (lower(data.class_names[c]) == lower(class_name)) dropped = c;
  if (dropped < 0) fail("drop_class: no class named '", class_name, "' in this dataset");
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < data.size(); ++i)
    if (data.labels[i] != dropped) keep.push_back(i);
  Dataset out = subset(data, keep);
  out.class_names.erase(out.class_names.begin() + dropped);
  for (int& label : out.labels)
    if (label > dropped) --label;
  return out;
}

Dataset cap_per_class(const Dataset& data, int64_t cap, uint64_t seed) {
  FER_CHECK(cap >= 0, "cap_per_class: negative cap ", cap);
  Generator gen(seed);
  std::vector<int64_t> keep;
  for (std::vector<int64_t>& members : indices_by_class(data)) {
    if (static_cast<int64_t>(members.size()) > cap) {
      shuffle(members, gen);
      members.resize(cap);
    }
    keep.insert(keep.end(), members.begin(), members.end());
  }
  std::sort(keep.begin(), keep.end());
  return subset(data, keep);
}

TrainVal stratified_split(const Dataset& data, double val_fraction, uint64_t seed) {
  FER_CHECK(val_fraction >= 0.0 && val_fraction <= 1.0,
            "stratified_split: val_fraction must be in [0, 1], got ", val_fraction);
  Generator gen(seed);
  std::vector<int64_t> train_idx, val_idx;
  for (std::vector<int64_t>& members : indices_by_class(data)) {
    const auto n_val = static_cast<size_t>(std::llround(members.size() * val_fraction));
    shuffle(members, gen);
    val_idx.insert(val_idx.end(), members.begin(), members.begin() + n_val);
    train_idx.insert(train_idx.end(), members.begin() + n_val, members.end());
  }
  std::sort(train_idx.begin(), train_idx.end());
  std::sort(val_idx.begin(), val_idx.end());
  TrainVal out{subset(data, train_idx), subset(data, val_idx)};
  return out;
}

}  // namespace fer::data
