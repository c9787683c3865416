// FER_HOST_DEVICE marks a function that both backends compile from one definition:
// __host__ __device__ under nvcc, so the CUDA kernels call it on the GPU, and nothing under the
// C++ compiler, so the CPU kernels and the host-side tests call the very same code. The
// counter-based random numbers (engine/random.h) and the GPU kernels' per-element math
// (kernels/cuda/*_math.h) are written this way, which is what makes their results equal on both.
#pragma once

#if defined(__CUDACC__)
#define FER_HOST_DEVICE __host__ __device__
#else
#define FER_HOST_DEVICE
#endif
