// BatchLoader: epoch orders, batch assembly and the prefetching worker threads.
#include "data/loader.h"

#include <algorithm>
#include <numeric>

#include "data/class_balance.h"
#include "engine/error.h"
#include "engine/random.h"

namespace fer::data {

BatchLoader::BatchLoader(std::shared_ptr<const Dataset> data, LoaderOptions opts)
    : data_(std::move(data)), opts_(std::move(opts)) {
  FER_CHECK(data_ != nullptr, "BatchLoader: no dataset");
  data_->check();
  FER_CHECK(opts_.batch_size > 0, "BatchLoader: batch_size must be positive, got ", opts_.batch_size);
  FER_CHECK(opts_.workers >= 0, "BatchLoader: negative worker count ", opts_.workers);
  FER_CHECK(opts_.prefetch > 0, "BatchLoader: prefetch must be positive, got ", opts_.prefetch);
  opts_.augment.validate();
  FER_CHECK(opts_.preprocess.crop >= 0 && opts_.preprocess.crop <= kFaceSize, "BatchLoader: crop ",
            opts_.preprocess.crop, " outside 0..", kFaceSize);
}

BatchLoader::~BatchLoader() { stop_workers(); }

int64_t BatchLoader::epoch_length() const { return data_->size(); }

int64_t BatchLoader::batches_per_epoch() const {
  const int64_t n = epoch_length(), b = opts_.batch_size;
  return opts_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> BatchLoader::epoch_order(int64_t epoch) const {
  if (opts_.balanced)
    return balanced_epoch(data_->labels, data_->num_classes(), opts_.seed,
                          static_cast<uint64_t>(epoch), epoch_length());
  std::vector<int64_t> order(data_->size());
  std::iota(order.begin(), order.end(), int64_t{0});
  if (opts_.shuffle) {
    Generator gen(splitmix64(splitmix64(opts_.seed ^ 0x5A1FF1Eull) ^ static_cast<uint64_t>(epoch)));
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[gen.below(i)]);
  }
  return order;
}

Batch BatchLoader::make_batch(const std::vector<int64_t>& order, int64_t epoch,
                              int64_t batch_index) const {
  const int64_t first = batch_index * opts_.batch_size;
  const int64_t count = std::min<int64_t>(opts_.batch_size, static_cast<int64_t>(order.size()) - first);
  FER_CHECK(count > 0, "BatchLoader: batch ", batch_index, " is past the end of the epoch");
  Batch b;
  b.epoch = epoch;
  b.index = batch_index;
  b.indices.assign(order.begin() + first, order.begin() + first + count);
  const int side = opts_.preprocess.crop > 0 ? opts_.preprocess.crop : kFaceSize;
  b.images = Tensor::empty({count, 1, side, side});
  b.labels = Tensor::empty({count});
  float* img = b.images.data();
  float* lab = b.labels.data();
  const bool augment_on = opts_.augment.any();
  std::vector<float> face(kFacePixels);
  for (int64_t j = 0; j < count; ++j) {
    const int64_t item = b.indices[j];
    float* dst = img + j * side * side;
    to_unit_float(data_->image(item), face.data(), kFacePixels, opts_.preprocess);
    Generator gen = sample_generator(opts_.seed, static_cast<uint64_t>(epoch),
                                     static_cast<uint64_t>(first + j));
    if (augment_on) augment(face.data(), opts_.augment, gen);
    // The model's view of the face: all of it, or a random crop x crop window.
    const int max_offset = kFaceSize - side;
    const int top = max_offset > 0 ? static_cast<int>(gen.below(max_offset + 1)) : 0;
    const int left = max_offset > 0 ? static_cast<int>(gen.below(max_offset + 1)) : 0;
    for (int y = 0; y < side; ++y)
      std::copy_n(face.data() + (top + y) * kFaceSize + left, side, dst + y * side);
    standardize(dst, static_cast<size_t>(side) * side, opts_.preprocess);
    lab[j] = static_cast<float>(data_->labels[item]);
  }
  return b;
}

void BatchLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  ready_.clear();
  failed_.clear();
}

void BatchLoader::start_epoch(int64_t epoch) {
  stop_workers();
  epoch_ = epoch;
  order_ = epoch_order(epoch);
  n_batches_ = batches_per_epoch();
  next_claim_ = 0;
  consumed_ = 0;
  stop_ = false;
  const int workers = static_cast<int>(std::min<int64_t>(opts_.workers, n_batches_));
  for (int t = 0; t < workers; ++t) threads_.emplace_back([this] { worker_loop(); });
}

void BatchLoader::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    cv_.wait(lock, [this] {
      return stop_ || (next_claim_ < n_batches_ && next_claim_ < consumed_ + opts_.prefetch);
    });
    if (stop_) return;
    const int64_t k = next_claim_++;
    lock.unlock();
    Batch batch;
    std::exception_ptr error;
    try {
      batch = make_batch(order_, epoch_, k);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (stop_) return;
    if (error) {
      failed_[k] = error;
    } else {
      ready_[k] = std::move(batch);
    }
    cv_.notify_all();
  }
}

bool BatchLoader::next(Batch& batch) {
  if (epoch_ < 0) start_epoch(0);
  if (consumed_ >= n_batches_) return false;
  if (threads_.empty()) {  // workers = 0
    batch = make_batch(order_, epoch_, consumed_);
    ++consumed_;
    return true;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  const int64_t k = consumed_;
  cv_.wait(lock, [&] { return ready_.count(k) > 0 || failed_.count(k) > 0; });
  ++consumed_;
  cv_.notify_all();  // a prefetch slot is free
  if (auto f = failed_.find(k); f != failed_.end()) {
    std::exception_ptr error = f->second;
    failed_.erase(f);
    lock.unlock();
    std::rethrow_exception(error);
  }
  auto r = ready_.find(k);
  batch = std::move(r->second);
  ready_.erase(r);
  return true;
}

}  // namespace fer::data
