// batchnorm_loops.h compiled with the avx2 set's flags (CMakeLists.txt), called only when CPUID
// reports the set (batchnorm.cpp asks isa.h which set is active).
#include "kernels/cpu/batchnorm_loops.h"

namespace fer::cpu {

BatchNormLoops batchnorm_loops_avx2() { return make_batchnorm_loops(); }

}  // namespace fer::cpu
