#include "engine/trace.h"

namespace fer {

namespace {
thread_local OpTrace* current_trace = nullptr;
}  // namespace

OpTrace* active_trace() { return current_trace; }

OpTrace::OpTrace() : previous_(current_trace) { current_trace = this; }
OpTrace::~OpTrace() { current_trace = previous_; }

void OpTrace::record(const char* op, std::vector<Tensor> inputs, const Tensor& output,
                     std::map<std::string, double> attrs) {
  ops_.push_back(TracedOp{op, std::move(inputs), output, std::move(attrs),
                          scopes_.empty() ? nullptr : scopes_.back()});
}

double TracedOp::attr(const std::string& name) const {
  auto it = attrs.find(name);
  FER_CHECK(it != attrs.end(), "traced op '", op, "' has no attribute '", name, "'");
  return it->second;
}

}  // namespace fer
