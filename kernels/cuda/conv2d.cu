// 2-d convolution on the GPU through cuDNN (its legacy convolution API, still shipped in cuDNN 9).
// The math: conv2d in engine/ops/conv_pool.cpp; the kernels' contracts: engine/backend.h.
//
// Per geometry (and TF32 mode) the backend keeps a ConvPlan (conv_plan.h): tensor, filter and
// convolution descriptors (NCHW float; cross-correlation as in PyTorch; groups through
// cudnnSetConvolutionGroupCount) and, per direction, the algorithm cuDNN runs:
//   forward          y  = conv(x, w)                     cudnnConvolutionForward
//   backward data    dx = conv_transpose(dy, w)          cudnnConvolutionBackwardData
//   backward filter  dw = correlate(x, dy) over the batch cudnnConvolutionBackwardFilter
// all with alpha = 1, beta = 0 (outputs overwritten, as the interface says). The bias is the
// backend's own: y[n, k, :] += b[k] after the convolution, and db[k] = sum over n, p of
// dy[n, k, p] (one block per channel, double accumulation).
//
// Choosing an algorithm, on a geometry's first use: by default cuDNN times every algorithm that
// fits in the workspace (cudnnFind...AlgorithmEx, on the real buffers, with a workspace of up to
// 1 GiB or half the free memory), and the fastest acceptable one is kept; FER_CUDNN_BENCHMARK=0
// takes cuDNN's heuristic ranking instead (no timing). Acceptable: succeeded, and
//   - without TF32: no tensor-core math (the descriptor is set to CUDNN_FMA_MATH: plain FP32);
//   - with TF32: never CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION (that may round to FP16);
//   - with FER_CUDNN_DETERMINISTIC=1: deterministic algorithms only.
// The workspace of each call comes from the caching allocator. Choosing waits for the device and
// allocates, so it cannot happen inside a CUDA graph capture: run the step once eagerly first.
#include <climits>
#include <vector>

#include "kernels/cuda/conv_plan.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"

namespace fer::cuda {

namespace {

constexpr size_t kMaxWorkspace = size_t(1) << 30;

struct Candidate {
  int algo;
  cudnnStatus_t status;
  size_t memory;
  cudnnDeterminism_t determinism;
  cudnnMathType_t math;
};

template <typename Perf>
std::vector<Candidate> candidates(const std::vector<Perf>& perf, int count) {
  std::vector<Candidate> out;
  for (int i = 0; i < count; ++i)
    out.push_back({static_cast<int>(perf[i].algo), perf[i].status, perf[i].memory,
                   perf[i].determinism, perf[i].mathType});
  return out;
}

ConvAlgo pick(const std::vector<Candidate>& cands, size_t limit, bool tf32, bool deterministic,
              const char* op, const Conv2dGeometry& g) {
  std::string seen;
  for (const Candidate& c : cands) {
    seen += detail_str(seen.empty() ? "" : ", ", "algo ", c.algo, ": ", cudnnGetErrorString(c.status));
    if (c.status != CUDNN_STATUS_SUCCESS || c.memory > limit) continue;
    if (c.math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
    if (!tf32 && c.math == CUDNN_TENSOR_OP_MATH) continue;
    if (deterministic && c.determinism != CUDNN_DETERMINISTIC) continue;
    return ConvAlgo{true, c.algo, c.memory, tf32 ? c.math : CUDNN_FMA_MATH};
  }
  fail("cuda ", op, ": cuDNN has no usable algorithm (workspace limit ", format_bytes(limit),
       tf32 ? "" : ", FP32 math", deterministic ? ", deterministic only" : "", "; tried: ", seen,
       ") for ", conv_str(g));
}

// A temporary workspace for cudnnFind*Ex straight from the driver (choosing is rare; the caching
// allocator should not keep a 1 GiB block for it): as large as the limit allows, halved until
// cudaMalloc succeeds.
struct FindWorkspace {
  void* ptr = nullptr;
  size_t size = 0;
  FindWorkspace() {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) cudaGetLastError();
    size = std::min(kMaxWorkspace, free_b / 2);
    while (size >= (size_t(1) << 20) && cudaMalloc(&ptr, size) != cudaSuccess) {
      cudaGetLastError();
      ptr = nullptr;
      size /= 2;
    }
    if (!ptr) size = 0;
  }
  ~FindWorkspace() {
    if (ptr) cudaFree(ptr);
  }
};

void check_not_capturing(const CudaBackend& be, const char* op, const Conv2dGeometry& g) {
  if (be.capture_state())
    fail("cuda ", op, ": no algorithm has been chosen yet for ", conv_str(g),
         "; choosing one times cuDNN's kernels, which a CUDA graph capture cannot record: run the "
         "captured work once eagerly first");
}

cudnnMathType_t search_math(bool tf32) { return tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH; }

// Chooses the algorithm of one direction on its first use. The three directions call the same
// three cuDNN functions, each in its own flavour, with the same argument pattern: two operands a, b
// and a result, each with its descriptor (forward: x, w -> y; backward data: w, dy -> dx; backward
// filter: x, dy -> dw). So one function serves all three, handed that direction's functions:
// max_count_of (how many algorithms there are), find (cudnnFind...AlgorithmEx: time them on the
// real buffers) and rank (cudnnGet...Algorithm_v7: the heuristic order, FER_CUDNN_BENCHMARK=0).
template <typename ADesc, typename BDesc, typename OutDesc, typename Perf>
ConvAlgo choose_algorithm(
    CudaBackend& be, ConvPlan& p, const Conv2dGeometry& g, const char* op,
    cudnnStatus_t (*max_count_of)(cudnnHandle_t, int*),
    cudnnStatus_t (*find)(cudnnHandle_t, ADesc, const void*, BDesc, const void*,
                          cudnnConvolutionDescriptor_t, OutDesc, void*, int, int*, Perf*, void*,
                          size_t),
    cudnnStatus_t (*rank)(cudnnHandle_t, ADesc, BDesc, cudnnConvolutionDescriptor_t, OutDesc, int,
                          int*, Perf*),
    ADesc a_desc, const float* a, BDesc b_desc, const float* b, OutDesc out_desc, float* out) {
  check_not_capturing(be, op, g);
  FER_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, search_math(p.tf32)), op, conv_str(g));
  int max_count = 0;
  FER_CUDNN_CHECK(max_count_of(be.cudnn(), &max_count), op);
  std::vector<Perf> perf(std::max(max_count, 1));
  int returned = 0;
  size_t limit = kMaxWorkspace;
  if (be.cudnn_benchmark()) {
    FindWorkspace ws;
    limit = ws.size;
    FER_CUDNN_CHECK(find(be.cudnn(), a_desc, a, b_desc, b, p.conv, out_desc, out, max_count,
                         &returned, perf.data(), ws.ptr, ws.size),
                    op, conv_str(g));
  } else {
    FER_CUDNN_CHECK(rank(be.cudnn(), a_desc, b_desc, p.conv, out_desc, max_count, &returned,
                         perf.data()),
                    op, conv_str(g));
  }
  return pick(candidates(perf, returned), limit, p.tf32, be.cudnn_deterministic(), op, g);
}

// db[k] = sum over n < N, p < P of dy[(n K + k) P + p]: one block per output channel.
__global__ void channel_sum_kernel(const float* __restrict__ dy, int64_t N, int64_t K, int64_t P,
                                   float* __restrict__ db) {
  const int64_t k = blockIdx.x;
  double s = 0.0;
  for (ChannelCursor p(threadIdx.x, blockDim.x, P); p.n < N; p.advance(P)) s += dy[p.offset(K, k, P)];
  s = block_sum(s);
  if (threadIdx.x == 0) db[k] = static_cast<float>(s);
}

}  // namespace

ConvPlan& CudaBackend::conv_plan(const Conv2dGeometry& g) {
  const std::array<int64_t, 15> key{g.N,        g.C,        g.H,     g.W,     g.K,
                                    g.KH,       g.KW,       g.stride_h, g.stride_w, g.pad_h,
                                    g.pad_w,    g.dil_h,    g.dil_w, g.groups, tf32_ ? 1 : 0};
  std::unique_ptr<ConvPlan>& slot = conv_plans_[key];
  if (slot) return *slot;
  const char* op = "conv2d";
  for (int64_t v : key)
    FER_CHECK(v >= 0 && v <= INT_MAX, "cuda conv2d: a size exceeds cuDNN's 32-bit range: ", conv_str(g));
  auto plan = std::make_unique<ConvPlan>();
  plan->tf32 = tf32_;
  const int N = static_cast<int>(g.N), C = static_cast<int>(g.C), H = static_cast<int>(g.H),
            W = static_cast<int>(g.W), K = static_cast<int>(g.K), groups = static_cast<int>(g.groups);
  FER_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->x), op, conv_str(g));
  FER_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->y), op, conv_str(g));
  FER_CUDNN_CHECK(cudnnCreateFilterDescriptor(&plan->w), op, conv_str(g));
  FER_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&plan->conv), op, conv_str(g));
  FER_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, N, C, H, W),
                  op, conv_str(g));
  FER_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, N, K,
                                             static_cast<int>(g.OH), static_cast<int>(g.OW)),
                  op, conv_str(g));
  FER_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, K, C / groups,
                                             static_cast<int>(g.KH), static_cast<int>(g.KW)),
                  op, conv_str(g));
  FER_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(plan->conv, static_cast<int>(g.pad_h),
                                                  static_cast<int>(g.pad_w), static_cast<int>(g.stride_h),
                                                  static_cast<int>(g.stride_w), static_cast<int>(g.dil_h),
                                                  static_cast<int>(g.dil_w), CUDNN_CROSS_CORRELATION,
                                                  CUDNN_DATA_FLOAT),
                  op, conv_str(g));
  FER_CUDNN_CHECK(cudnnSetConvolutionGroupCount(plan->conv, groups), op, conv_str(g));
  FER_CUDNN_CHECK(cudnnSetConvolutionMathType(plan->conv, search_math(tf32_)), op, conv_str(g));
  int on = 0, oc = 0, oh = 0, ow = 0;
  FER_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(plan->conv, plan->x, plan->w, &on, &oc, &oh, &ow),
                  op, conv_str(g));
  FER_CHECK(on == N && oc == K && oh == g.OH && ow == g.OW, "cuda conv2d: cuDNN computes an output of [",
            on, ", ", oc, ", ", oh, ", ", ow, "] for ", conv_str(g));
  slot = std::move(plan);
  return *slot;
}

// packed: unused (cuDNN chooses and keeps its algorithms per geometry, conv_plan). The bias and
// the activation in one elementwise pass after cuDNN's product.
void CudaBackend::conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w,
                                 const float* bias, float* y, PackedWeights* /*packed*/,
                                 BnActivation act) {
  if (g.N == 0) return;  // an empty batch: nothing to compute (cuDNN rejects zero sizes)
  ConvPlan& p = conv_plan(g);
  if (!p.forward.chosen)
    p.forward = choose_algorithm(*this, p, g, "conv2d_forward",
                                 cudnnGetConvolutionForwardAlgorithmMaxCount,
                                 cudnnFindConvolutionForwardAlgorithmEx,
                                 cudnnGetConvolutionForwardAlgorithm_v7, p.x, x, p.w, w, p.y, y);
  const ConvAlgo& a = p.forward;
  FER_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, a.math), "conv2d_forward", conv_str(g));
  ScratchBuffer ws(allocator_, a.workspace);
  const float one = 1.0f, zero = 0.0f;
  FER_CUDNN_CHECK(cudnnConvolutionForward(cudnn_, &one, p.x, x, p.w, w, p.conv,
                                          static_cast<cudnnConvolutionFwdAlgo_t>(a.algo), ws.get(),
                                          a.workspace, &zero, p.y, y),
                  "conv2d_forward", conv_str(g), ", algorithm ", a.algo);
  library_done("conv2d_forward", [&] { return conv_str(g); });
  if (bias || act != BnActivation::None) {
    const int64_t K = g.K, P = g.OH * g.OW;
    const bool clamps = act != BnActivation::None;
    const float hi = act == BnActivation::ReLU6 ? 6.0f : INFINITY;
    launch_planes(stream_, g.N * K, P, [=] __device__(int64_t plane, int32_t j) {
      float v = y[plane * P + j] + (bias ? bias[plane % K] : 0.0f);
      if (clamps) {  // comparisons, so that a NaN stays NaN as through a separate ReLU
        v = v < 0.0f ? 0.0f : v;
        v = v > hi ? hi : v;
      }
      y[plane * P + j] = v;
    });
    launched("conv2d_forward (bias, activation)", [&] { return conv_str(g); });
  }
}

void CudaBackend::conv2d_backward_input(const Conv2dGeometry& g, const float* dy, const float* w,
                                        float* dx) {
  if (g.N == 0) return;
  ConvPlan& p = conv_plan(g);
  if (!p.backward_data.chosen)
    p.backward_data = choose_algorithm(*this, p, g, "conv2d_backward_input",
                                       cudnnGetConvolutionBackwardDataAlgorithmMaxCount,
                                       cudnnFindConvolutionBackwardDataAlgorithmEx,
                                       cudnnGetConvolutionBackwardDataAlgorithm_v7, p.w, w, p.y, dy,
                                       p.x, dx);
  const ConvAlgo& a = p.backward_data;
  FER_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, a.math), "conv2d_backward_input", conv_str(g));
  ScratchBuffer ws(allocator_, a.workspace);
  const float one = 1.0f, zero = 0.0f;
  FER_CUDNN_CHECK(cudnnConvolutionBackwardData(cudnn_, &one, p.w, w, p.y, dy, p.conv,
                                               static_cast<cudnnConvolutionBwdDataAlgo_t>(a.algo),
                                               ws.get(), a.workspace, &zero, p.x, dx),
                  "conv2d_backward_input", conv_str(g), ", algorithm ", a.algo);
  library_done("conv2d_backward_input", [&] { return conv_str(g); });
}

void CudaBackend::conv2d_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x,
                                         float* dw, float* dbias) {
  if (g.N == 0) {  // gradients of an empty batch are zero
    if (dw) fill(dw, g.K * (g.C / g.groups) * g.KH * g.KW, 0.0f);
    if (dbias) fill(dbias, g.K, 0.0f);
    return;
  }
  if (dw) {
    ConvPlan& p = conv_plan(g);
    if (!p.backward_filter.chosen)
      p.backward_filter = choose_algorithm(*this, p, g, "conv2d_backward_weight",
                                           cudnnGetConvolutionBackwardFilterAlgorithmMaxCount,
                                           cudnnFindConvolutionBackwardFilterAlgorithmEx,
                                           cudnnGetConvolutionBackwardFilterAlgorithm_v7, p.x, x,
                                           p.y, dy, p.w, dw);
    const ConvAlgo& a = p.backward_filter;
    FER_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, a.math), "conv2d_backward_weight", conv_str(g));
    ScratchBuffer ws(allocator_, a.workspace);
    const float one = 1.0f, zero = 0.0f;
    FER_CUDNN_CHECK(cudnnConvolutionBackwardFilter(cudnn_, &one, p.x, x, p.y, dy, p.conv,
                                                   static_cast<cudnnConvolutionBwdFilterAlgo_t>(a.algo),
                                                   ws.get(), a.workspace, &zero, p.w, dw),
                    "conv2d_backward_weight", conv_str(g), ", algorithm ", a.algo);
    library_done("conv2d_backward_weight", [&] { return conv_str(g); });
  }
  if (dbias && g.K > 0) {
    channel_sum_kernel<<<static_cast<unsigned>(g.K), kThreads, 0, stream_>>>(dy, g.N, g.K, g.OH * g.OW, dbias);
    launched("conv2d_backward_weight (bias)", [&] { return conv_str(g); });
  }
}

}  // namespace fer::cuda
