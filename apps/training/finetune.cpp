#include "apps/training/finetune.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "layers/layers.h"

namespace fer {

void FinetuneOptions::validate() const {
  FER_CHECK(unfreeze_top >= 0, "--unfreeze-top must be >= 0, got ", unfreeze_top);
  FER_CHECK(backbone_lr_mult > 0.0f && std::isfinite(backbone_lr_mult),
            "--backbone-lr-mult must be a positive number, got ", backbone_lr_mult);
  FER_CHECK(layer_decay > 0.0f && std::isfinite(layer_decay),
            "--layer-decay must be a positive number, got ", layer_decay);
}

Classifier& as_classifier(Module& model) {
  auto* c = dynamic_cast<Classifier*>(&model);
  FER_CHECK(c != nullptr, "fine-tuning needs a Classifier{features, classifier} model, got ",
            model.describe());
  return *c;
}

bool FinetunePlan::backbone_frozen() const { return trainable_blocks() == 0; }

int64_t FinetunePlan::trainable_blocks() const {
  int64_t n = 0;
  for (const FinetuneBlock& b : blocks) n += b.trainable;
  return n;
}

FinetunePlan plan_finetune(Module& model, const FinetuneOptions& opts) {
  opts.validate();
  Classifier& cls = as_classifier(model);
  const auto children = cls.features->named_children();
  FinetunePlan plan;

  // Cut the children into blocks: a new block at each parameterised child that is not a
  // BatchNorm following a block; parameterless children join the block before them (or, before
  // the first block, the first block).
  std::vector<size_t> pending;  // parameterless children before the first block
  for (size_t i = 0; i < children.size(); ++i) {
    const auto& [name, m] = children[i];
    const int64_t p = m->parameter_count(false);
    const bool is_bn = dynamic_cast<BatchNorm*>(m.get()) != nullptr;
    if (p > 0 && !(is_bn && !plan.blocks.empty())) {
      FinetuneBlock b;
      b.children = std::move(pending);
      pending.clear();
      b.what = m->describe();
      plan.blocks.push_back(std::move(b));
    }
    if (plan.blocks.empty()) {
      pending.push_back(i);
      continue;
    }
    plan.blocks.back().children.push_back(i);
  }
  FER_CHECK(!plan.blocks.empty(), "fine-tuning: the features of ", model.describe(),
            " hold no parameters (nothing to freeze or train)");
  for (FinetuneBlock& b : plan.blocks) {
    const std::string& first = children[b.children.front()].first;
    const std::string& last = children[b.children.back()].first;
    b.name = "features." + first + (first == last ? "" : ".." + last);
    b.params = 0;
    for (size_t c : b.children) b.params += children[c].second->parameter_count(false);
  }

  const int64_t n = static_cast<int64_t>(plan.blocks.size());
  FER_CHECK(opts.unfreeze_top <= n, "--unfreeze-top ", opts.unfreeze_top, ": the features of ",
            model.describe(), " have only ", n, " blocks");
  const int64_t first_trainable = !opts.freezes() ? 0 : n - opts.unfreeze_top;
  for (int64_t i = 0; i < n; ++i) {
    FinetuneBlock& b = plan.blocks[static_cast<size_t>(i)];
    b.trainable = i >= first_trainable;
    b.lr_scale = b.trainable ? opts.backbone_lr_mult *
                                   static_cast<float>(std::pow(opts.layer_decay, static_cast<double>(n - 1 - i)))
                             : 0.0f;
    plan.total_params += b.params;
    if (b.trainable) plan.trainable_params += b.params;
  }
  plan.freeze_bn = opts.freeze_bn;
  plan.head_params = cls.classifier->parameter_count(false);
  plan.total_params += plan.head_params;
  plan.trainable_params += plan.head_params;
  return plan;
}

std::string FinetunePlan::describe() const {
  std::ostringstream os;
  char line[320];
  const int64_t trainable = trainable_blocks(), n = static_cast<int64_t>(blocks.size());
  os << "features: " << n << " blocks, "
     << (trainable == n ? "all" : trainable == 0 ? "none" : std::to_string(trainable)) << " trainable\n";
  for (size_t i = 0; i < blocks.size(); ++i) {
    const FinetuneBlock& b = blocks[i];
    std::string what = b.what.size() > 44 ? b.what.substr(0, 40) + "...)" : b.what;
    if (b.trainable)
      std::snprintf(line, sizeof line, "  block %2zu  %-18s %-44s %10lld params  trainable, lr x%.4g\n",
                    i, b.name.c_str(), what.c_str(), static_cast<long long>(b.params), b.lr_scale);
    else
      std::snprintf(line, sizeof line, "  block %2zu  %-18s %-44s %10lld params  frozen (eval mode)\n",
                    i, b.name.c_str(), what.c_str(), static_cast<long long>(b.params));
    os << line;
  }
  std::snprintf(line, sizeof line, "  head      %-18s %-44s %10lld params  trainable, lr x1\n",
                "classifier", "", static_cast<long long>(head_params));
  os << line;
  if (freeze_bn) os << "  batchnorm: running statistics kept (--freeze-bn)\n";
  std::snprintf(line, sizeof line, "trainable parameters: %lld of %lld (%.1f%%)\n",
                static_cast<long long>(trainable_params), static_cast<long long>(total_params),
                100.0 * static_cast<double>(trainable_params) / static_cast<double>(std::max<int64_t>(total_params, 1)));
  os << line;
  return os.str();
}

Metadata FinetunePlan::to_metadata() const {
  std::string pattern, scales;
  for (const FinetuneBlock& b : blocks) {
    pattern += b.trainable ? '1' : '0';
    scales += (scales.empty() ? "" : ",") + metadata_str(b.lr_scale);
  }
  Metadata meta{{"finetune.blocks", std::to_string(blocks.size())},
                {"finetune.trainable", pattern},
                {"finetune.lr_scales", scales}};
  if (freeze_bn) meta["finetune.freeze_bn"] = "1";  // absent = 0, as in checkpoints before the flag
  return meta;
}

void FinetunePlan::check_matches(const Metadata& meta, const std::string& file) const {
  const Metadata mine = to_metadata();
  if (!meta.count("finetune.trainable")) {
    bool plain = true;
    for (const FinetuneBlock& b : blocks) plain = plain && b.trainable && b.lr_scale == 1.0f;
    FER_CHECK(plain && !freeze_bn, file, " was written by a run where every layer trained at one learning rate; "
              "resume it without --freeze-backbone / --unfreeze-top / --backbone-lr-mult / --layer-decay / --freeze-bn");
    return;
  }
  const bool theirs_freeze_bn = meta.count("finetune.freeze_bn") && meta.at("finetune.freeze_bn") == "1";
  FER_CHECK(theirs_freeze_bn == freeze_bn, file, " was written ", theirs_freeze_bn ? "with" : "without",
            " --freeze-bn: resume ", theirs_freeze_bn ? "with" : "without", " it");
  for (const char* key : {"finetune.trainable", "finetune.lr_scales", "finetune.blocks"}) {
    const std::string& theirs = metadata_get(meta, key);
    FER_CHECK(theirs == mine.at(key), file, " was written with ", key, " = '", theirs,
              "', this run has '", mine.at(key), "': resume with the same --freeze-backbone / "
              "--unfreeze-top / --backbone-lr-mult / --layer-decay flags");
  }
}

void apply_freezing(Module& model, const FinetunePlan& plan) {
  Classifier& cls = as_classifier(model);
  const auto children = cls.features->named_children();
  for (const FinetuneBlock& b : plan.blocks)
    for (size_t c : b.children) children.at(c).second->set_requires_grad(b.trainable);
  cls.classifier->set_requires_grad(true);
}

namespace {
// Every BatchNorm in the subtree of `m` to eval mode.
void batchnorm_eval(Module& m) {
  if (dynamic_cast<BatchNorm*>(&m) != nullptr) m.eval();
  for (const auto& child : m.named_children()) batchnorm_eval(*child.second);
}
}  // namespace

void set_train_mode(Module& model, const FinetunePlan& plan, bool on) {
  model.train(on);
  if (!on) return;
  Classifier& cls = as_classifier(model);
  const auto children = cls.features->named_children();
  for (const FinetuneBlock& b : plan.blocks)
    if (!b.trainable)
      for (size_t c : b.children) children.at(c).second->eval();
  if (plan.freeze_bn) batchnorm_eval(*cls.features);
}

std::vector<ParamGroup> param_groups(Module& model, const FinetunePlan& plan, float lr) {
  Classifier& cls = as_classifier(model);
  const auto children = cls.features->named_children();
  auto block_params = [&](const FinetuneBlock& b) {
    std::vector<Tensor> out;
    for (size_t c : b.children)
      for (const Tensor& t : children.at(c).second->parameters(false)) out.push_back(t);
    return out;
  };
  const std::vector<Tensor> head = cls.classifier->parameters(false);

  bool one_rate = true;
  for (const FinetuneBlock& b : plan.blocks) one_rate = one_rate && (!b.trainable || b.lr_scale == 1.0f);
  if (one_rate) {  // the plain layout: one unnamed group, model order
    ParamGroup g;
    for (const FinetuneBlock& b : plan.blocks)
      if (b.trainable)
        for (const Tensor& t : block_params(b)) g.params.push_back(t);
    g.params.insert(g.params.end(), head.begin(), head.end());
    return {g};
  }

  std::vector<ParamGroup> groups;
  bool shared = true;  // every trainable block at the same rate: one "features" group
  float scale = -1.0f;
  for (const FinetuneBlock& b : plan.blocks)
    if (b.trainable) {
      shared = shared && (scale < 0.0f || b.lr_scale == scale);
      scale = b.lr_scale;
    }
  for (size_t i = 0; i < plan.blocks.size(); ++i) {
    const FinetuneBlock& b = plan.blocks[i];
    if (!b.trainable) continue;
    if (shared && !groups.empty()) {
      for (const Tensor& t : block_params(b)) groups.back().params.push_back(t);
      continue;
    }
    ParamGroup g;
    g.params = block_params(b);
    g.lr = lr * b.lr_scale;
    g.name = shared ? "features" : "features.block" + std::to_string(i);
    groups.push_back(std::move(g));
  }
  ParamGroup h;
  h.params = head;
  h.lr = lr;
  h.name = "head";
  groups.push_back(std::move(h));
  return groups;
}

}  // namespace fer
