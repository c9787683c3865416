// BatchLoader: turns a Dataset into training/evaluation batches, prepared ahead on worker threads.
//
// A batch is
//   images  fer::Tensor [B, 1, 48, 48] float on the CPU: preprocessed (data/preprocess.h:
//           histogram equalisation on by default, scaled to [0, 1]), augmented
//           (data/augment.h, off by default), then standardised if asked;
//   labels  fer::Tensor [B] float - the class ids as floats (the engine's target convention);
//   indices the dataset items in the batch.
// B is batch_size, except possibly for the last batch of an epoch (dropped with drop_last).
//
// Order: epoch e visits the items in order (shuffle off), in a seeded permutation of (seed, e)
// (shuffle on), or in a class-balanced draw with replacement (balanced on, data/class_balance.h).
// The sample at position p of epoch e is augmented with sample_generator(seed, e, p). Batches
// come out in order and their content depends only on (data, options, epoch) - never on the
// number of workers or on thread scheduling.
//
// Threads: `workers` threads build batches while the caller trains, at most `prefetch` batches
// ahead (a bounded queue). workers = 0 builds each batch on the calling thread. start_epoch()
// abandons an unfinished epoch; the destructor stops and joins the workers (never blocks on a
// consumer that stopped early). An exception while building a batch is rethrown by next() for
// that batch.
//
//   BatchLoader loader(std::make_shared<Dataset>(train), {.batch_size = 64, .seed = 1});
//   for (int64_t epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     for (Batch b; loader.next(b);) { ... b.images, b.labels ... }
//   }
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/preprocess.h"
#include "engine/tensor.h"

namespace fer::data {

struct LoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = true;
  bool drop_last = false;
  bool balanced = false;  // class-balanced sampling with replacement (replaces shuffle)
  int workers = 2;        // 0: build batches on the calling thread
  int prefetch = 4;       // batches prepared ahead of the consumer
  uint64_t seed = 0;
  PreprocessOptions preprocess;
  AugmentOptions augment;  // all off by default
};

struct Batch {
  Tensor images;                 // [B, 1, 48, 48] (crop x crop with preprocess.crop)
  Tensor labels;                 // [B], class ids as float
  std::vector<int64_t> indices;  // dataset items, B of them
  int64_t epoch = 0;
  int64_t index = 0;             // batch number within the epoch
  int64_t size() const { return static_cast<int64_t>(indices.size()); }
};

class BatchLoader {
 public:
  BatchLoader(std::shared_ptr<const Dataset> data, LoaderOptions opts);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // Begins epoch `epoch` (any order, any repeat). next() without it begins epoch 0.
  void start_epoch(int64_t epoch);
  // The next batch of the current epoch; false once the epoch is exhausted.
  bool next(Batch& batch);

  int64_t batches_per_epoch() const;
  int64_t epoch_length() const;  // items drawn per epoch (before drop_last)
  // The item order of an epoch (what the batches are cut from).
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  // Builds batch `batch_index` of an epoch directly from its order (what the workers do).
  Batch make_batch(const std::vector<int64_t>& order, int64_t epoch, int64_t batch_index) const;

  const Dataset& dataset() const { return *data_; }
  const LoaderOptions& options() const { return opts_; }

 private:
  void stop_workers();
  void worker_loop();

  std::shared_ptr<const Dataset> data_;
  LoaderOptions opts_;

  // Current epoch; fixed while workers run (start_epoch joins them before changing it).
  int64_t epoch_ = -1;
  std::vector<int64_t> order_;
  int64_t n_batches_ = 0;

  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  int64_t next_claim_ = 0;  // next batch a worker will build
  int64_t consumed_ = 0;    // next batch next() hands out
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, std::exception_ptr> failed_;
  std::vector<std::thread> threads_;
};

}  // namespace fer::data
