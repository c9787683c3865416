#include "apps/training/evaluate.h"

#include <algorithm>
#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"

namespace fer {

Tta parse_tta(const std::string& name) {
  if (name == "none") return Tta::None;
  if (name == "flip") return Tta::Flip;
  if (name == "tencrop") return Tta::TenCrop;
  fail("unknown test-time augmentation '", name, "' (expected none, flip or tencrop)");
}

namespace {
// Mirror NCHW images left-right (on the host; TTA batches are small next to the network).
Tensor mirror(const Tensor& x) {
  std::vector<float> v = x.to_vector();
  const int64_t W = x.size(3), rows = x.numel() / W;
  for (int64_t r = 0; r < rows; ++r) std::reverse(v.begin() + r * W, v.begin() + (r + 1) * W);
  return Tensor::from_vector(x.shape(), v, x.device());
}

// The crop of size (ch, cw) at (top, left) of every image.
Tensor crop(const Tensor& x, int64_t top, int64_t left, int64_t ch, int64_t cw) {
  const std::vector<float> v = x.to_vector();
  const int64_t NC = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  std::vector<float> out(NC * ch * cw);
  for (int64_t p = 0; p < NC; ++p)
    for (int64_t i = 0; i < ch; ++i)
      for (int64_t j = 0; j < cw; ++j) out[(p * ch + i) * cw + j] = v[(p * H + top + i) * W + left + j];
  return Tensor::from_vector({x.size(0), x.size(1), ch, cw}, out, x.device());
}
}  // namespace

Tensor predict_batch(Module& model, const Tensor& faces, Tta tta, int64_t crop_side) {
  NoGradGuard no_grad;
  const int64_t H = faces.size(2), W = faces.size(3);
  const bool cropped = crop_side > 0 && (crop_side < H || crop_side < W);
  FER_CHECK(crop_side <= std::min(H, W), "predict: crop ", crop_side, " is larger than the faces ",
            faces.shape_str());
  const Tensor centre = cropped ? crop(faces, (H - crop_side) / 2, (W - crop_side) / 2, crop_side, crop_side) : faces;
  std::vector<Tensor> views{centre};
  if (tta == Tta::Flip) views.push_back(mirror(centre));
  if (tta == Tta::TenCrop) {
    views.clear();
    // Crops of 42 of 48 pixels resized back to the input, or the model's own crops unresized.
    const int64_t ch = cropped ? crop_side : H * 7 / 8, cw = cropped ? crop_side : W * 7 / 8;
    const std::pair<int64_t, int64_t> corners[] = {{0, 0}, {0, W - cw}, {H - ch, 0}, {H - ch, W - cw},
                                                   {(H - ch) / 2, (W - cw) / 2}};
    for (auto [top, left] : corners) {
      Tensor c = crop(faces, top, left, ch, cw);
      if (!cropped) c = resize_bilinear(c, H, W);
      views.push_back(c);
      views.push_back(mirror(c));
    }
  }
  Tensor mean_probs;
  for (const Tensor& v : views) {
    Tensor p = softmax(model.forward(v)).to(Device::CPU);
    mean_probs = mean_probs.defined() ? add(mean_probs, p) : p;
  }
  return views.size() > 1 ? scale(mean_probs, 1.0f / static_cast<float>(views.size())) : mean_probs;
}

void score(Predictions& out) {
  const int64_t C = out.num_classes, N = static_cast<int64_t>(out.labels.size());
  out.predicted.assign(N, 0);
  double loss = 0;
  int64_t correct = 0;
  for (int64_t i = 0; i < N; ++i) {
    const float* row = out.probs.data() + i * C;
    const int best = static_cast<int>(std::max_element(row, row + C) - row);
    out.predicted[i] = best;
    correct += best == out.labels[i];
    loss -= std::log(std::max(row[out.labels[i]], 1e-12f));
  }
  out.loss = N > 0 ? loss / static_cast<double>(N) : 0.0;
  out.accuracy = N > 0 ? static_cast<double>(correct) / static_cast<double>(N) : 0.0;
}

Predictions predict_dataset(Module& model, const data::Dataset& data,
                            const data::PreprocessOptions& preprocess, Device device,
                            int64_t batch_size, Tta tta, const BatchProgress& progress) {
  const bool was_training = model.is_training();
  model.eval();
  Predictions out;
  out.labels = data.labels;
  for (int64_t begin = 0; begin < data.size(); begin += batch_size) {
    const int64_t n = std::min(batch_size, data.size() - begin);
    Tensor faces = data::faces_to_tensor(data.image(begin), n, preprocess).to(device);
    const std::vector<float> probs = predict_batch(model, faces, tta, preprocess.crop).to_vector();
    out.num_classes = static_cast<int64_t>(probs.size()) / n;
    out.probs.insert(out.probs.end(), probs.begin(), probs.end());
    if (progress) progress(begin + n, data.size());
  }
  model.train(was_training);
  score(out);
  return out;
}

Predictions average_predictions(const std::vector<Predictions>& members) {
  FER_CHECK(!members.empty(), "average_predictions: no predictions to average");
  Predictions out = members.front();
  for (size_t m = 1; m < members.size(); ++m) {
    FER_CHECK(members[m].labels == out.labels && members[m].num_classes == out.num_classes,
              "average_predictions: member ", m, " was run on other faces or classes");
    for (size_t i = 0; i < out.probs.size(); ++i) out.probs[i] += members[m].probs[i];
  }
  const float inv = 1.0f / static_cast<float>(members.size());
  for (float& p : out.probs) p *= inv;
  score(out);
  return out;
}

}  // namespace fer
