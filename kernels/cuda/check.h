// Error checks for the CUDA backend: every CUDA runtime, cuBLAS and cuDNN call goes through one of
// these macros, which throw a fer::Error naming the op, the call, the library's error name and
// text, and the shapes involved:
//
//   cuda conv2d_forward: cudnnConvolutionForward(...) failed: CUDNN_STATUS_BAD_PARAM (...)
//     [x [3, 5, 7, 9], w [4, 5, 3, 3], stride 2x2, pad 1x1, dilation 1x1, groups 1]
//
//   FER_CUDA_CHECK(cudaMemcpyAsync(...), "copy_to_host", bytes, " bytes");
//   FER_CUBLAS_CHECK(cublasSgemm(...), "gemm", "M=", M, " N=", N, " K=", K);
//   FER_CUDNN_CHECK(cudnnConvolutionForward(...), "conv2d_forward", conv_str(g));
//
// The detail arguments are only formatted when the call failed. Kernel launches are checked by
// CudaBackend::launched() (kernels/cuda/cuda_backend.h). Kernels run asynchronously, so a kernel
// that faults is reported by the next call that waits for the device; FER_CUDA_SYNC=1 makes the
// backend wait after every op so that the error names the op that caused it.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <sstream>
#include <string>

#include "engine/backend.h"
#include "engine/error.h"

namespace fer::cuda {

template <typename... Parts>
std::string detail_str(const Parts&... parts) {
  std::ostringstream os;
  ((os << parts), ...);  // a comma fold: no statement without effect when there are no parts
  return os.str();
}

[[noreturn]] void raise_error(const char* op, const char* call, const char* error_name,
                              const char* error_text, const std::string& detail);

// cuDNN's own explanation of its last failure (cudnnGetLastErrorString), or "cuDNN".
std::string cudnn_last_error();

// "x [N, C, H, W], w [K, C/groups, KH, KW], stride .., pad .., dilation .., groups .."
std::string conv_str(const Conv2dGeometry& g);
// "x [N, C, H, W] -> [N, C, OH, OW], window KHxKW, stride .., pad .."
std::string pool_str(const Pool2dGeometry& g);

}  // namespace fer::cuda

#define FER_CUDA_CHECK(call, op, ...)                                                        \
  do {                                                                                       \
    const cudaError_t fer_err_ = (call);                                                     \
    if (fer_err_ != cudaSuccess)                                                             \
      ::fer::cuda::raise_error(op, #call, cudaGetErrorName(fer_err_),                        \
                               cudaGetErrorString(fer_err_),                                 \
                               ::fer::cuda::detail_str(__VA_ARGS__));                        \
  } while (0)

#define FER_CUBLAS_CHECK(call, op, ...)                                                      \
  do {                                                                                       \
    const cublasStatus_t fer_st_ = (call);                                                   \
    if (fer_st_ != CUBLAS_STATUS_SUCCESS)                                                    \
      ::fer::cuda::raise_error(op, #call, cublasGetStatusName(fer_st_),                      \
                               cublasGetStatusString(fer_st_),                               \
                               ::fer::cuda::detail_str(__VA_ARGS__));                        \
  } while (0)

#define FER_CUDNN_CHECK(call, op, ...)                                                       \
  do {                                                                                       \
    const cudnnStatus_t fer_st_ = (call);                                                    \
    if (fer_st_ != CUDNN_STATUS_SUCCESS)                                                     \
      ::fer::cuda::raise_error(op, #call, cudnnGetErrorString(fer_st_),                      \
                               ::fer::cuda::cudnn_last_error().c_str(),                      \
                               ::fer::cuda::detail_str(__VA_ARGS__));                        \
  } while (0)
