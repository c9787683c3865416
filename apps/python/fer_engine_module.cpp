// The Python module fer_engine: the engine's face analyzer, checkpoints, training and evaluation
// from Python. Thin by design: every computation is a call into apps/inference, apps/training
// and apps/cli (the same code as fer_predict, fer_train and fer_eval); this file converts
// arguments and results, releases the GIL around the work and maps errors to Python exceptions.
//
//   import fer_engine
//   detector = fer_engine.FER()                      # the `fer` package's interface
//   detector.detect_emotions(image)                  # [{"box": [x, y, w, h], "emotions": {...}}]
//   detector.top_emotion(image)                      # ("happy", 0.93), or (None, None)
//   model = fer_engine.load("models/pretrained/fer_vgg_small.safetensors")
//   model.predict(faces)                             # N x 7 probabilities
//   fer_engine.train(data="../shared/fer2013", epochs=1, out="runs/py", progress=print)
//   fer_engine.evaluate(checkpoint="runs/py/best.safetensors")["accuracy"]
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "apps/inference/face_analyzer.h"
#include "apps/python/commands.h"
#include "apps/python/image_input.h"
#include "engine/backend.h"
#include "engine/error.h"

namespace py = pybind11;
using namespace fer;

namespace {

// Where the shipped checkpoint and ensemble manifests are looked for (checkpoint.h's
// locate_checkpoint reads $FER_SOURCE_DIR): $FER_HOME, else the source tree the module was built
// from, so that the default checkpoint is found whatever the working directory. A FER_SOURCE_DIR
// already set (the tests) is kept unless FER_HOME is given.
std::string fer_home() {
  if (const char* home = std::getenv("FER_HOME"); home && *home) {
    ::setenv("FER_SOURCE_DIR", home, 1);
    return home;
  }
  ::setenv("FER_SOURCE_DIR", FER_SOURCE_DIR, 0);
  return std::getenv("FER_SOURCE_DIR");
}

Device device_argument(const std::string& name) {
  if (name == "cpu") return Device::CPU;
  if (name == "cuda") {
    if (!cuda_available())
      throw py::value_error("device='cuda': no usable GPU in this build or machine (device='cpu' works everywhere)");
    return Device::CUDA;
  }
  throw py::value_error("device: expected 'cpu' or 'cuda', got '" + name + "'");
}

Tta parse_tta_argument(const std::string& name) {
  try {
    return parse_tta(name);
  } catch (const fer::Error& e) {
    throw py::value_error(std::string("tta: ") + e.what());
  }
}

py::dict emotions_dict(const FacePrediction& face, const std::vector<std::string>& class_names) {
  py::dict emotions;
  for (size_t c = 0; c < class_names.size(); ++c) emotions[py::str(class_names[c])] = face.probabilities[c];
  return emotions;
}

// The `fer` package's face: {"box": [x, y, w, h], "emotions": {...}}.
py::dict face_dict(const FacePrediction& face, const std::vector<std::string>& class_names) {
  py::dict d;
  d["box"] = py::list(py::make_tuple(face.box.x, face.box.y, face.box.width, face.box.height));
  d["emotions"] = emotions_dict(face, class_names);
  return d;
}

// A face analyzer and what Python sees of it. `analyzer` detects faces (FER) or takes each image
// as one face crop (Model, FER.predict_faces).
struct Analyzer {
  AnalyzerOptions options;
  std::shared_ptr<FaceAnalyzer> analyzer;

  explicit Analyzer(const AnalyzerOptions& o) : options(o) {
    py::gil_scoped_release release;  // loading a checkpoint reads and checks every tensor
    analyzer = std::make_shared<FaceAnalyzer>(o);
  }

  std::vector<std::vector<FacePrediction>> run(const std::vector<data::GrayImage>& images) const {
    py::gil_scoped_release release;
    return analyzer->analyze_batch(images);
  }

  std::string describe() const {
    std::string classes;
    for (const std::string& c : analyzer->class_names()) classes += (classes.empty() ? "" : ", ") + c;
    const int s = analyzer->input_size();
    return analyzer->model_name() + " from " + analyzer->checkpoint_path() + ": " + std::to_string(s) + "x" +
           std::to_string(s) + " gray faces, " + std::to_string(analyzer->class_names().size()) +
           " classes (" + classes + "), tta " + (options.tta == Tta::None ? "none" : options.tta == Tta::Flip ? "flip" : "tencrop");
  }
};

// fer_engine.load(): a checkpoint that classifies face crops.
class Model {
 public:
  explicit Model(const AnalyzerOptions& o) : analyzer_(o) {}

  // Probabilities N x C (numpy float32 when numpy is importable, else nested lists), each face
  // resized to the model's input and preprocessed as the checkpoint says, calibrated.
  py::object predict(py::handle faces, bool rgb) const {
    const std::vector<data::GrayImage> images = python::images_from_python(faces, rgb);
    const auto results = analyzer_.run(images);
    const size_t C = analyzer_.analyzer->class_names().size();
    try {
      py::module_::import("numpy");
    } catch (const py::error_already_set&) {
      py::list rows;
      for (const auto& r : results) rows.append(py::cast(r.front().probabilities));
      return rows;
    }
    py::array_t<float> out({static_cast<py::ssize_t>(results.size()), static_cast<py::ssize_t>(C)});
    auto view = out.mutable_unchecked<2>();
    for (size_t i = 0; i < results.size(); ++i)
      for (size_t c = 0; c < C; ++c) view(i, c) = results[i].front().probabilities[c];
    return out;
  }

  const Analyzer& analyzer() const { return analyzer_; }

 private:
  Analyzer analyzer_;
};

// fer_engine.FER(): the `fer` package's detector, on the engine's Haar cascade and model.
class Detector {
 public:
  explicit Detector(const AnalyzerOptions& o) : detector_(o) {}

  py::list detect_emotions(py::handle image, bool rgb) const {
    std::vector<data::GrayImage> one;
    one.push_back(python::image_from_python(image, rgb));
    const std::vector<FacePrediction> found = detector_.run(one).front();
    py::list faces;
    for (const FacePrediction& f : found) faces.append(face_dict(f, detector_.analyzer->class_names()));
    return faces;
  }

  // The largest face's most probable emotion and its probability; (None, None) without a face.
  py::tuple top_emotion(py::handle image, bool rgb) const {
    std::vector<data::GrayImage> one;
    one.push_back(python::image_from_python(image, rgb));
    const auto faces = detector_.run(one).front();
    if (faces.empty()) return py::make_tuple(py::none(), py::none());
    return py::make_tuple(faces.front().emotion, faces.front().confidence);
  }

  // Emotions of face crops (no detection): one dict per face, as in detect_emotions.
  py::list predict_faces(py::handle faces, bool rgb) {
    const std::vector<data::GrayImage> images = python::images_from_python(faces, rgb);
    if (!crops_) {
      AnalyzerOptions o = detector_.options;
      o.detect = false;
      crops_ = std::make_unique<Analyzer>(o);
    }
    py::list out;
    for (const auto& r : crops_->run(images)) out.append(emotions_dict(r.front(), crops_->analyzer->class_names()));
    return out;
  }

  const Analyzer& analyzer() const { return detector_; }

 private:
  Analyzer detector_;
  std::unique_ptr<Analyzer> crops_;  // made on the first predict_faces()
};

}  // namespace

PYBIND11_MODULE(fer_engine, m) {
  m.doc() = "Facial expression recognition with the FER engine (C++): the `fer` package's FER() "
            "interface, checkpoints, training and evaluation.";
  m.attr("__version__") = FER_VERSION;
  m.attr("home") = fer_home();
  m.attr("default_checkpoint") = kDefaultCheckpoint;

  // fer::Error carries the engine's message (it names the file, flag, tensor or shape at fault).
  static py::exception<fer::Error> error(m, "Error", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const fer::Error& e) {
      error(e.what());
    }
  });

  py::class_<Model>(m, "Model", "A checkpoint that classifies face crops (fer_engine.load()).")
      .def("predict", &Model::predict, py::arg("faces"), py::arg("rgb") = false,
           "Probabilities (N x C) of N face crops: an array N x H x W [x 3|4] of uint8 or a list of "
           "images (arrays, paths, bytes), each resized to the model's input as fer_predict "
           "--no-detect does. Colour is BGR unless rgb=True.")
      .def_property_readonly("class_names", [](const Model& s) { return s.analyzer().analyzer->class_names(); })
      .def_property_readonly("input_size", [](const Model& s) { return s.analyzer().analyzer->input_size(); })
      .def_property_readonly("checkpoint", [](const Model& s) { return s.analyzer().analyzer->checkpoint_path(); })
      .def_property_readonly("name", [](const Model& s) { return s.analyzer().analyzer->model_name(); })
      .def("describe", [](const Model& s) { return s.analyzer().describe(); })
      .def("__repr__", [](const Model& s) { return "<fer_engine.Model " + s.analyzer().describe() + ">"; });

  m.def(
      "load",
      [](const std::string& checkpoint, const std::string& tta, const std::string& device) {
        AnalyzerOptions o;
        o.checkpoint = checkpoint;
        o.detect = false;
        o.tta = parse_tta_argument(tta);
        o.device = device_argument(device);
        return Model(o);
      },
      py::arg("checkpoint") = std::string(kDefaultCheckpoint), py::arg("tta") = "none",
      py::arg("device") = "cpu",
      "Loads a checkpoint (several comma-separated, or an ensemble manifest: the mean of their "
      "probabilities) with its preprocessing and calibration temperature.");

  py::class_<Detector>(m, "FER",
                       "The `fer` package's detector: faces found with a Haar cascade, their emotions "
                       "from the engine's model (models/pretrained/fer_vgg_small.safetensors by default).")
      .def(py::init([](const std::string& checkpoint, int min_face_size, float scale_factor, int min_neighbors,
                       float margin, const std::string& tta, std::optional<std::string> cascade,
                       const std::string& device, bool mtcnn, bool profile) {
             if (mtcnn)
               throw py::value_error("mtcnn=True: this engine detects faces with OpenCV's Haar cascade only");
             AnalyzerOptions o;
             o.checkpoint = checkpoint;
             o.min_face = min_face_size;
             o.scale_factor = scale_factor;
             o.min_neighbors = min_neighbors;
             o.margin = margin;
             o.tta = parse_tta_argument(tta);
             o.cascade = cascade.value_or("");
             o.device = device_argument(device);
             o.profile = profile;
             return Detector(o);
           }),
           py::arg("checkpoint") = std::string(kDefaultCheckpoint), py::arg("min_face_size") = AnalyzerOptions().min_face,
           py::arg("scale_factor") = AnalyzerOptions().scale_factor,
           py::arg("min_neighbors") = AnalyzerOptions().min_neighbors, py::arg("margin") = AnalyzerOptions().margin,
           py::arg("tta") = "none", py::arg("cascade") = py::none(), py::arg("device") = "cpu",
           py::arg("mtcnn") = false, py::arg("profile") = false)
      .def("detect_emotions", &Detector::detect_emotions, py::arg("img"), py::arg("rgb") = false,
           "Every face of the image, largest first: [{'box': [x, y, w, h], 'emotions': {'angry': p, ...}}]. "
           "img: a path, the bytes of a JPEG/PNG, or a uint8 array H x W [x 3|4] (BGR unless rgb=True).")
      .def("top_emotion", &Detector::top_emotion, py::arg("img"), py::arg("rgb") = false,
           "(emotion, probability) of the largest face, or (None, None) when there is no face.")
      .def("predict_faces", &Detector::predict_faces, py::arg("faces"), py::arg("rgb") = false,
           "Emotions of face crops, no detection: a list of {'angry': p, ...}, one per face.")
      .def_property_readonly("class_names", [](const Detector& s) { return s.analyzer().analyzer->class_names(); })
      .def_property_readonly("checkpoint", [](const Detector& s) { return s.analyzer().analyzer->checkpoint_path(); })
      .def("__repr__", [](const Detector& s) { return "<fer_engine.FER " + s.analyzer().describe() + ">"; });

  m.def("train", &python::train, py::arg("progress") = py::none(),
        "Trains as fer_train does, with its options as keywords (max_steps=5 is --max-steps 5; "
        "train_options() lists them). progress: a function called with a dict after every step "
        "and epoch (raise in it, or press Ctrl-C, to stop: the run is saved for resume=True). "
        "Returns a summary: best_val_acc, best_epoch, best_path, last_path, history, ...");
  m.def("evaluate", &python::evaluate, py::arg("progress") = py::none(),
        "Evaluates as fer_eval does, with its options as keywords (evaluate_options() lists them). "
        "Returns report.json's content: accuracy, the classification report, ROC AUC, calibration.");
  m.def("train_options", &python::train_options, "train()'s options and their defaults.");
  m.def("evaluate_options", &python::evaluate_options, "evaluate()'s options and their defaults.");
  m.def("set_threads", [](int n) {
    if (n < 1) throw py::value_error("set_threads: expected at least 1 thread, got " + std::to_string(n));
    set_cpu_threads(n);
  }, py::arg("n"), "Threads of the CPU kernels (default: FER_THREADS, or every core).");
  m.def("threads", &cpu_threads, "Threads of the CPU kernels.");
}
