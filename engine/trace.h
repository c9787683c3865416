// Op tracing: a record of the ops one forward pass really runs, for exporters.
//
// While an OpTrace is in scope on a thread, every op of engine/ops.h (and Tensor::reshape, whose
// views are ops too) called on that thread appends one TracedOp after computing its output: the
// op's name, its input tensors, its output tensor and its attributes. Tensors are identified by
// their handle (Tensor::same): the output of one op is the input of the next, so the list is the
// data-flow graph of the pass, as torch.jit.trace / torch.onnx.export see a PyTorch module. A
// tensor that is an input but no traced op's output is a leaf: the traced pass's own input, a
// parameter or buffer, or a constant the forward built (an input adapter's 1x1 mixing weights).
// What a forward computes outside the op API (a loop over data()) is invisible to the trace;
// models/export/onnx_export.cpp checks what it can of that.
//
// Ops that are built from other ops (global_avg_pool = avg_pool2d + reshape, mean = sum + scale)
// leave no entry of their own: the trace holds their parts. Dropout in eval mode returns its
// input itself and leaves none either (it is the identity).
//
// Scopes: Module::operator() (layers/module.h) marks the module whose forward is running, so each
// op carries the innermost module that ran it (an opaque pointer here: the engine does not know
// modules; the exporter names it from the model's tree in its error messages).
//
// Cost on the normal path: one thread-local pointer read per op (active_trace() is null).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace fer {

struct TracedOp {
  std::string op;               // "conv2d", "batch_norm", "reshape", ... (the engine's names)
  std::vector<Tensor> inputs;   // in the op's argument order; undefined for an absent bias
  Tensor output;
  std::map<std::string, double> attrs;  // integers and floats alike ("stride_h", "eps")
  const void* scope = nullptr;  // the innermost module running when the op ran (or null)

  // The attribute `name`; an error naming the op when it is missing.
  double attr(const std::string& name) const;
  int64_t int_attr(const std::string& name) const { return static_cast<int64_t>(attr(name)); }
};

class OpTrace {
 public:
  OpTrace();   // becomes the thread's active trace (the previous one resumes after)
  ~OpTrace();
  OpTrace(const OpTrace&) = delete;
  OpTrace& operator=(const OpTrace&) = delete;

  void record(const char* op, std::vector<Tensor> inputs, const Tensor& output,
              std::map<std::string, double> attrs = {});
  const std::vector<TracedOp>& ops() const { return ops_; }

  // Marks `scope` as running for its lifetime (Module::operator() makes one per module call).
  class Scope {
   public:
    Scope(OpTrace& trace, const void* scope) : trace_(trace) { trace_.scopes_.push_back(scope); }
    ~Scope() { trace_.scopes_.pop_back(); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    OpTrace& trace_;
  };

 private:
  std::vector<TracedOp> ops_;
  std::vector<const void*> scopes_;
  OpTrace* previous_;
};

// The trace in scope on this thread, or null (the ops' one check).
OpTrace* active_trace();

}  // namespace fer
