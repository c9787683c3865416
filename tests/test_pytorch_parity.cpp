// The whole fer_vgg_small network against PyTorch (Debian's python3-torch): same weights, same
// batch, same loss; logits, loss, every parameter gradient and the batchnorm running statistics
// must agree (tests/reference/fer_vgg_small_parity.py does the PyTorch side). Skips visibly when
// PyTorch is not installed.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>

#include "engine/ops.h"
#include "engine/random.h"
#include "engine/safetensors.h"
#include "models/registry.h"

using namespace fer;
namespace fs = std::filesystem;

TEST_CASE("fer_vgg_small: forward, loss and gradients match PyTorch") {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
    MESSAGE("SKIPPED: python3-torch is not installed (scripts/setup.sh installs it for the tests)");
    return;
  }
  const fs::path dir = fs::temp_directory_path() / ("fer_parity_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  manual_seed(11);
  ModelConfig config;
  config.dropout = 0.0f;  // a deterministic network: dropout masks would differ
  auto model = create_model("fer_vgg_small", config);
  model->train();
  Generator gen(12);
  Tensor x = Tensor::uniform({16, 1, 48, 48}, 0.0f, 1.0f, gen);
  std::vector<float> labels(16);
  for (int i = 0; i < 16; ++i) labels[i] = static_cast<float>((i * 5) % 7);
  Tensor y = Tensor::from_vector({16}, labels);

  StateDict in = model->state_dict();
  in["input"] = x;
  in["target"] = y;
  save_safetensors((dir / "in.safetensors").string(), in);

  CrossEntropyOptions ce;
  ce.label_smoothing = 0.1f;
  Tensor logits = model->forward(x);
  Tensor loss = cross_entropy(logits, y, ce);
  loss.backward();
  StateDict out;
  out["logits"] = logits.detach();
  out["loss"] = loss.detach().reshape({1});
  for (auto& [name, p] : model->named_parameters()) out["grad." + name] = p.grad();
  for (auto& [name, b] : model->named_buffers()) out["buffer." + name] = b;
  save_safetensors((dir / "out.safetensors").string(), out);

  const char* src = std::getenv("FER_SOURCE_DIR");
  const std::string script = std::string(src ? src : ".") + "/tests/reference/fer_vgg_small_parity.py";
  const std::string cmd = "/usr/bin/python3 " + script + " " + (dir / "in.safetensors").string() +
                          " " + (dir / "out.safetensors").string();
  CHECK_MESSAGE(std::system(cmd.c_str()) == 0, "PyTorch disagrees: see the table above");
  fs::remove_all(dir);
}
