// doctest checks over the results of op cases (tests/support/op_cases.h): one case run twice,
// under a reference condition and another one (the CPU and CUDA, the scalar kernels and avx2,
// 1 thread and 2), compared result by result. Kept apart from op_cases.h so that the registry
// itself needs no test framework (a benchmark can read it).
#pragma once
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "engine/error.h"
#include "tests/support/op_cases.h"

namespace fer::testing {

// CHECKs one named result of a case: defined on both sides, same shape, values within `tol`.
// ref_label and got_label name the two conditions in the message ("cpu" / "cuda", "scalar" /
// "avx2", "1 thread" / "2 threads").
inline void check_close(const std::string& case_name, const std::string& what, const Tensor& ref,
                        const Tensor& got, const Tolerance& tol, const std::string& ref_label,
                        const std::string& got_label) {
  INFO(case_name << ": " << what);
  if (ref.defined() != got.defined()) {
    FAIL_CHECK(case_name, ": ", what, " is defined under ", ref.defined() ? ref_label : got_label,
               " only");
    return;
  }
  if (!ref.defined()) return;
  if (ref.shape() != got.shape()) {
    FAIL_CHECK(case_name, ": ", what, " has shape ", ref.shape_str(), " under ", ref_label, " and ",
               got.shape_str(), " under ", got_label);
    return;
  }
  const Mismatch m = compare_values(ref, got, tol);
  CHECK_MESSAGE(m.count == 0, case_name, ": ", what, " ", ref.shape_str(), ": ", m.count, " of ",
                m.size, " values differ beyond the tolerance; worst at ", m.worst_index, ": ",
                ref_label, " ", m.ref, " vs ", got_label, " ", m.got);
}

// CHECKs every named result of two runs of one case.
inline void check_results(const std::string& case_name, const Named& ref, const Named& got,
                          const Tolerance& tol, const std::string& ref_label,
                          const std::string& got_label) {
  if (ref.size() != got.size()) {
    FAIL_CHECK(case_name, ": ", ref.size(), " results under ", ref_label, ", ", got.size(),
               " under ", got_label);
    return;
  }
  for (size_t i = 0; i < ref.size(); ++i) {
    if (ref[i].first != got[i].first) {
      FAIL_CHECK(case_name, ": result ", i, " is '", ref[i].first, "' under ", ref_label, " and '",
                 got[i].first, "' under ", got_label);
      return;
    }
    check_close(case_name, ref[i].first, ref[i].second, got[i].second, tol, ref_label, got_label);
  }
}

// Runs a case on `device`; a fer::Error fails the check, naming the case and the condition, and
// gives nothing back (so one broken case does not hide the others).
inline std::optional<Named> try_run(const OpCase& c, Device device, const std::string& label) {
  try {
    return c.run(device);
  } catch (const Error& e) {
    FAIL_CHECK(c.name, " failed under ", label, ": ", e.what());
    return std::nullopt;
  }
}

}  // namespace fer::testing
