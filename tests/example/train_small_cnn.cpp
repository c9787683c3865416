// A small CNN trained end to end through the public API: the program to read after
// engine/README.md. CTest builds and runs it, so it cannot drift from the API it shows.
//
//   data   synthetic 48x48 faces of the 7 FER classes (data/synthetic.h), batched by BatchLoader
//   model  three conv-batchnorm-relu-maxpool stages and a linear classifier (layers/layers.h)
//   train  cross_entropy, backward, an AdamW step per batch; the loss must fall
//   save   the state dict (weights and batchnorm statistics) to a safetensors file; a fresh model
//          loaded from it must give the same logits
#include <cstdio>
#include <filesystem>
#include <memory>

#include "data/loader.h"
#include "data/synthetic.h"
#include "engine/autograd.h"
#include "engine/optim.h"
#include "engine/random.h"
#include "engine/safetensors.h"
#include "layers/layers.h"

using namespace fer;

std::shared_ptr<Module> small_cnn() {
  const int64_t channels[] = {1, 8, 16, 32};
  auto net = std::make_shared<Sequential>();
  for (int stage = 0; stage < 3; ++stage) {  // 48x48 -> 24x24 -> 12x12 -> 6x6 pixels
    const int64_t in = channels[stage], out = channels[stage + 1];
    net->add(std::make_shared<Conv2d>(in, out, /*kernel=*/3, /*stride=*/1, /*padding=*/1, false));
    net->add(std::make_shared<BatchNorm2d>(out));
    net->add(ReLU());
    net->add(std::make_shared<MaxPool2d>(2));
  }
  net->add(std::make_shared<Flatten>());
  net->add(std::make_shared<Linear>(32 * 6 * 6, 7));
  return net;
}

int main() {
  manual_seed(1);  // the initial weights
  auto faces = std::make_shared<data::Dataset>(data::make_synthetic_faces(40, /*seed=*/2));
  data::BatchLoader loader(faces, {.batch_size = 35, .seed = 3});
  auto model = small_cnn();
  AdamW optimizer(model->parameters(), /*lr=*/3e-3f);

  double first_loss = 0, last_loss = 0;
  for (int epoch = 0; epoch < 6; ++epoch) {
    double total = 0;
    loader.start_epoch(epoch);
    for (data::Batch batch; loader.next(batch);) {
      Tensor loss = cross_entropy((*model)(batch.images), batch.labels);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      total += loss.item() / loader.batches_per_epoch();
    }
    std::printf("epoch %d: mean loss %.4f\n", epoch, total);
    (epoch == 0 ? first_loss : last_loss) = total;
  }

  const std::string path =
      std::filesystem::temp_directory_path() / "fer_example_small_cnn.safetensors";
  save_safetensors(path, model->state_dict());
  auto reloaded = small_cnn();
  reloaded->load_state_dict(load_safetensors(path).tensors);
  std::filesystem::remove(path);

  model->eval();
  reloaded->eval();
  NoGradGuard no_grad;
  const Tensor x = loader.make_batch(loader.epoch_order(0), 0, 0).images;
  const bool same = (*model)(x).to_vector() == (*reloaded)(x).to_vector();
  std::printf("loss %.4f -> %.4f; reloaded model gives %s logits\n", first_loss, last_loss,
              same ? "the same" : "DIFFERENT");
  return last_loss < 0.5 * first_loss && same ? 0 : 1;
}
