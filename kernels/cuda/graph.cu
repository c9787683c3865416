// CUDA graphs: record the kernels of a piece of work once, replay them with one launch.
//
// A training step of fer_vgg_small launches a few hundred small kernels; at batch 64 on an H100
// the host's launch and autograd overhead rivals the GPU time. Backend::capture(body, pool) runs
// body() with the stream in capture mode, so its kernels, copies and memsets are recorded instead
// of run, and returns a DeviceGraph whose replay(seed) runs them all again on the same buffers.
//
// What makes the recorded addresses stay valid (the caching allocator's graph pools,
// allocator.h): every allocation inside body comes from the pool `pool`, and the memory of that
// pool stays reserved while one of its graphs lives; tensors created inside body (a forward's
// activations, the gradients) keep their storage and each replay rewrites it. Graphs that hand
// tensors to each other (a forward graph and the backward graph that reads its saved activations)
// share a pool and must replay in the order they were recorded.
//
// What body may not do: anything that waits for the device or reads host memory (copy_to_host,
// copy_from_host, sum, nll_loss_forward, item()): the backend throws a fer::Error naming the op,
// and the capture is abandoned. cuDNN algorithm selection also waits, so body must have run once
// eagerly before (CudaBackend::conv2d_* says so if not). Random kernels (dropout) mix the replay's
// seed, read from a device word the graph owns, into the seed recorded at capture time.
//
// How a trainer uses it (apps/training/train_step.cpp, when the device is CUDA and the batch size is
// fixed):
//   Tensor x = Tensor::empty({B, 1, 48, 48}, cuda), dlogits, logits;   // static input
//   ... one or two eager steps (cuDNN picks its algorithms), then optimizer.zero_grad() ...
//   auto forward  = be.capture([&] { logits = model.forward(x); }, 1);
//   dlogits = Tensor::empty(logits.shape(), cuda);
//   auto backward = be.capture([&] { run_backward(logits, dlogits); }, 1);   // engine/autograd.h
//   per step:  x.copy_(batch.images);  forward->replay(seed);
//              Tensor l = logits.detach().set_requires_grad(true);  (loss eagerly, tiny)
//              cross_entropy(l, labels).backward();  dlogits.copy_(l.grad());
//              backward->replay(0);  optimizer.step();   (no zero_grad: the graph owns the grads)
#include "kernels/cuda/cuda_backend.h"

namespace fer::cuda {

namespace {
__global__ void set_word_kernel(uint64_t* word, uint64_t value) { *word = value; }

class CudaGraph final : public DeviceGraph {
 public:
  CudaGraph(CudaBackend& be, cudaGraph_t graph, cudaGraphExec_t exec, std::shared_ptr<GraphPool> pool,
            uint64_t* replay_seed)
      : be_(be), graph_(graph), exec_(exec), pool_(std::move(pool)), replay_seed_(replay_seed) {}

  ~CudaGraph() override {
    // A replay may still be running: let it finish before the memory goes back to the cache.
    cudaStreamSynchronize(be_.stream());
    cudaGraphExecDestroy(exec_);
    cudaGraphDestroy(graph_);
    cudaFree(replay_seed_);
    cudaGetLastError();
  }

  void replay(uint64_t seed) override {
    FER_CHECK(!be_.capture_state(), "cuda: DeviceGraph::replay inside a capture");
    set_word_kernel<<<1, 1, 0, be_.stream()>>>(replay_seed_, seed);
    be_.launched("graph replay", [] { return std::string("setting the replay seed"); });
    FER_CUDA_CHECK(cudaGraphLaunch(exec_, be_.stream()), "graph replay");
    be_.launched("graph replay", [] { return std::string(); });
  }

 private:
  CudaBackend& be_;
  cudaGraph_t graph_;
  cudaGraphExec_t exec_;
  std::shared_ptr<GraphPool> pool_;  // keeps the recorded addresses reserved
  uint64_t* replay_seed_;
};
}  // namespace

std::unique_ptr<DeviceGraph> CudaBackend::capture(const std::function<void()>& body, int pool_id) {
  FER_CHECK(!capture_, "cuda capture: a graph is already being recorded (captures do not nest)");
  // Eager work queued before is not part of the graph; finishing it first also reports its errors
  // here rather than as a failed capture.
  wait("capture");
  uint64_t* replay_seed = nullptr;
  // Only read by recorded kernels, after replay() has written it: needs no initial value.
  FER_CUDA_CHECK(cudaMalloc(&replay_seed, sizeof(uint64_t)), "capture", "replay seed word");
  auto state = std::make_unique<CaptureState>();
  state->pool = allocator_.graph_pool(pool_id);
  state->replay_seed = replay_seed;
  std::shared_ptr<GraphPool> pool = state->pool;

  // Relaxed mode: the allocator may call cudaMalloc while recording (a new block of the pool).
  const cudaError_t begun = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed);
  if (begun != cudaSuccess) {
    cudaFree(replay_seed);
    FER_CUDA_CHECK(begun, "capture");
  }
  allocator_.begin_capture(pool.get());
  capture_ = std::move(state);
  auto stop = [&](cudaGraph_t* graph) {
    const cudaError_t e = cudaStreamEndCapture(stream_, graph);
    allocator_.end_capture();
    capture_.reset();
    return e;
  };
  try {
    body();
  } catch (...) {
    cudaGraph_t partial = nullptr;
    stop(&partial);
    if (partial) cudaGraphDestroy(partial);
    cudaGetLastError();
    cudaFree(replay_seed);
    throw;
  }
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = stop(&graph);
  if (ended != cudaSuccess || !graph) {
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    cudaFree(replay_seed);
    fail("cuda capture: the recording was invalidated (", cudaGetErrorName(ended), ": ",
         cudaGetErrorString(ended), "): something in the captured function synchronised with the "
         "device, used another stream, or another thread used the GPU meanwhile");
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
  if (made != cudaSuccess) {
    cudaGraphDestroy(graph);
    cudaFree(replay_seed);
    FER_CUDA_CHECK(made, "capture", "instantiating the recorded graph");
  }
  return std::make_unique<CudaGraph>(*this, graph, exec, std::move(pool), replay_seed);
}

}  // namespace fer::cuda
