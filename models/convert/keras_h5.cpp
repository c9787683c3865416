// Reading Keras weight files with the HDF5 C library (Debian libhdf5-dev). Compiled without it
// (no FER_HAVE_HDF5), read_keras_h5 says that .h5 files are unsupported in this build.
//
// Bounds: weights of rank 1..4 with at most 2^31 elements each, float datasets only, string
// attributes only; anything else is an error naming the file, layer and weight. HDF5's own error
// printing is switched off; its failures become fer::Errors.
#include <filesystem>

#include "models/convert/keras.h"

#ifdef FER_HAVE_HDF5
#include <hdf5.h>

#include <cstring>
#endif

namespace fer::convert {

#ifndef FER_HAVE_HDF5

bool keras_h5_supported() { return false; }

KerasFile read_keras_h5(const std::string& path) {
  fail(path, ": Keras .h5 files are unsupported in this build: it was configured without the HDF5 "
       "library (apt-get install libhdf5-dev, then configure and build again)");
}

Tensor read_h5_dataset(const std::string& path, const std::string&) { read_keras_h5(path); return {}; }

#else

bool keras_h5_supported() { return true; }

namespace {

// Closes an HDF5 handle on scope exit.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(Handle&& other) noexcept : id_(other.id_), close_(other.close_) { other.id_ = -1; }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// The strings of attribute `name` of `obj` (fixed- or variable-length; empty when it has no
// elements, whatever its type). `where` names the object in messages.
std::vector<std::string> string_attribute(hid_t obj, const std::string& name, const std::string& where) {
  Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  FER_CHECK(attr.ok(), where, ": cannot open attribute '", name, "'");
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  Handle space(H5Aget_space(attr.get()), H5Sclose);
  FER_CHECK(type.ok() && space.ok(), where, ": unreadable attribute '", name, "'");
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  FER_CHECK(n >= 0 && n < (1 << 24), where, ": attribute '", name, "' has ", n, " elements");
  if (n == 0) return {};
  FER_CHECK(H5Tget_class(type.get()) == H5T_STRING, where, ": attribute '", name,
            "' should hold strings");
  std::vector<std::string> out;
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    std::vector<char*> buf(static_cast<size_t>(n), nullptr);
    FER_CHECK(H5Aread(attr.get(), mem.get(), buf.data()) >= 0, where, ": cannot read attribute '", name, "'");
    for (char* s : buf) out.emplace_back(s ? s : "");
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, buf.data());
  } else {
    const size_t size = H5Tget_size(type.get());
    FER_CHECK(size > 0 && size < (1 << 16), where, ": attribute '", name, "' has strings of ", size, " bytes");
    // Read in the stored string type itself: converting h5py's null-padded strings to a
    // null-terminated type of the same size would cut the last character of the longest name.
    Handle mem(H5Tcopy(type.get()), H5Tclose);
    std::vector<char> buf(static_cast<size_t>(n) * size, '\0');
    FER_CHECK(H5Aread(attr.get(), mem.get(), buf.data()) >= 0, where, ": cannot read attribute '", name, "'");
    for (hssize_t i = 0; i < n; ++i) {
      const char* s = buf.data() + i * size;
      out.emplace_back(s, strnlen(s, size));
    }
  }
  return out;
}

bool has_attribute(hid_t obj, const std::string& name) { return H5Aexists(obj, name.c_str()) > 0; }

// Keras splits a long attribute into name0, name1, ... (HDF5's 64 KiB object header limit).
std::vector<std::string> keras_list_attribute(hid_t obj, const std::string& name, const std::string& where) {
  if (has_attribute(obj, name)) return string_attribute(obj, name, where);
  std::vector<std::string> out;
  for (int chunk = 0; has_attribute(obj, name + std::to_string(chunk)); ++chunk) {
    auto part = string_attribute(obj, name + std::to_string(chunk), where);
    out.insert(out.end(), part.begin(), part.end());
  }
  FER_CHECK(!out.empty() || name == "weight_names", where, ": no '", name,
            "' attribute: not a Keras weights file");
  return out;
}

Tensor read_dataset(hid_t group, const std::string& path, const std::string& where) {
  Handle ds(H5Dopen2(group, path.c_str(), H5P_DEFAULT), H5Dclose);
  FER_CHECK(ds.ok(), where, ": weight '", path, "' is listed in weight_names but not in the file");
  Handle type(H5Dget_type(ds.get()), H5Tclose);
  Handle space(H5Dget_space(ds.get()), H5Sclose);
  FER_CHECK(type.ok() && space.ok(), where, ": weight '", path, "' is unreadable");
  FER_CHECK(H5Tget_class(type.get()) == H5T_FLOAT, where, ": weight '", path, "' is not floating point");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  FER_CHECK(rank >= 1 && rank <= 4, where, ": weight '", path, "' has rank ", rank, " (expected 1 to 4)");
  hsize_t dims[4] = {0, 0, 0, 0};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  Shape shape;
  int64_t numel = 1;
  for (int d = 0; d < rank; ++d) {
    FER_CHECK(dims[d] > 0 && dims[d] < (1u << 31), where, ": weight '", path, "' has dimension ", dims[d]);
    shape.push_back(static_cast<int64_t>(dims[d]));
    numel *= shape.back();
    FER_CHECK(numel < (int64_t{1} << 31), where, ": weight '", path, "' is too large");
  }
  Tensor t = Tensor::empty(shape);
  FER_CHECK(H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data()) >= 0, where,
            ": cannot read weight '", path, "'");
  return t;
}

Handle open_h5(const std::string& path) {
  FER_CHECK(std::filesystem::is_regular_file(path), path, ": no such file");
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors become fer::Errors, not HDF5's printout
  FER_CHECK(H5Fis_hdf5(path.c_str()) > 0, path, ": not an HDF5 file");
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  FER_CHECK(file.ok(), path, ": cannot open the HDF5 file");
  return file;
}

}  // namespace

Tensor read_h5_dataset(const std::string& path, const std::string& dataset) {
  Handle file = open_h5(path);
  FER_CHECK(H5Lexists(file.get(), dataset.c_str(), H5P_DEFAULT) > 0, path, ": no dataset '", dataset, "'");
  return read_dataset(file.get(), dataset, path);
}

KerasFile read_keras_h5(const std::string& path) {
  Handle file = open_h5(path);
  // A whole-model file (model.save) keeps the weights under "model_weights".
  const bool whole_model = H5Lexists(file.get(), "model_weights", H5P_DEFAULT) > 0;
  Handle root(H5Gopen2(file.get(), whole_model ? "model_weights" : "/", H5P_DEFAULT), H5Gclose);
  FER_CHECK(root.ok(), path, ": cannot open the weights group");
  KerasFile out;
  for (const char* key : {"keras_version", "backend"}) {
    if (!has_attribute(root.get(), key)) continue;
    auto v = string_attribute(root.get(), key, path);
    (std::string(key) == "backend" ? out.backend : out.keras_version) = v.empty() ? "" : v[0];
  }
  for (const std::string& name : keras_list_attribute(root.get(), "layer_names", path)) {
    const std::string where = path + ": Keras layer '" + name + "'";
    FER_CHECK(H5Lexists(root.get(), name.c_str(), H5P_DEFAULT) > 0, where,
              " is listed in layer_names but has no group");
    Handle group(H5Gopen2(root.get(), name.c_str(), H5P_DEFAULT), H5Gclose);
    FER_CHECK(group.ok(), where, ": cannot open its group");
    KerasLayer layer{name, {}};
    for (const std::string& w : keras_list_attribute(group.get(), "weight_names", where))
      layer.weights.push_back({w, read_dataset(group.get(), w, where)});
    out.layers.push_back(std::move(layer));
  }
  return out;
}

#endif

}  // namespace fer::convert
