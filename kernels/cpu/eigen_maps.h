// Eigen views over raw row-major float buffers: the CPU kernels keep their own memory and let
// Eigen see it as matrices, without copies.
#pragma once
#include <Eigen/Core>

namespace fer::cpu {

using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<RowMajorMatrix>;
using ConstMatrixMap = Eigen::Map<const RowMajorMatrix>;

}  // namespace fer::cpu
