// Python objects -> data::GrayImage. See image_input.h.
#include "apps/python/image_input.h"

#include <string_view>

namespace fer::python {

namespace {

std::string shape_text(const std::vector<py::ssize_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// numpy's name for the element type when the object has one ("float32"), else the buffer's format.
std::string dtype_text(py::handle obj, const py::buffer_info& info) {
  if (py::hasattr(obj, "dtype")) return py::str(obj.attr("dtype"));
  return "buffer format '" + info.format + "' (" + std::to_string(info.itemsize) + " bytes per item)";
}

bool is_path(py::handle obj) { return py::isinstance<py::str>(obj) || py::hasattr(obj, "__fspath__"); }

bool is_encoded(py::handle obj) { return py::isinstance<py::bytes>(obj) || py::isinstance<py::bytearray>(obj); }

// The pixels of a buffer: uint8, C-contiguous, with `leading` extra leading dimensions (0 for one
// image, 1 for a batch) before H x W [x C].
struct Pixels {
  py::buffer_info info;
  int count = 1, height = 0, width = 0, channels = 1;
};

Pixels pixels_of(py::handle obj, int leading, const std::string& what) {
  Pixels p;
  p.info = py::reinterpret_borrow<py::buffer>(obj).request();
  const py::buffer_info& info = p.info;
  const std::string shape = shape_text(info.shape);
  std::string_view format(info.format);
  if (!format.empty() && std::string_view("@=<>!|").find(format.front()) != std::string_view::npos)
    format.remove_prefix(1);
  if (info.itemsize != 1 || format != "B")
    throw py::value_error(what + ": expected uint8 pixels (0-255), got " + dtype_text(obj, info) +
                          " with shape " + shape + (leading ? "" : "; convert with image.astype(numpy.uint8)"));
  const py::ssize_t ndim = info.ndim - leading;
  const bool colour = ndim == 3 && (info.shape.back() == 3 || info.shape.back() == 4 || info.shape.back() == 1);
  if (ndim != 2 && !colour)
    throw py::value_error(what + ": expected " + (leading ? "N x H x W, N x H x W x 3 or N x H x W x 4"
                                                          : "H x W, H x W x 3 or H x W x 4") +
                          " uint8 pixels, got shape " + shape);
  // C order: each stride is the product of the sizes after it.
  py::ssize_t expected = 1;
  for (py::ssize_t d = info.ndim - 1; d >= 0; --d) {
    if (info.shape[d] > 1 && info.strides[d] != expected)
      throw py::value_error(what + " of shape " + shape + " is not C-contiguous (a slice or transpose): "
                            "pass numpy.ascontiguousarray(" + what + ")");
    expected *= info.shape[d];
  }
  // N x H x 3 is a batch of images 3 pixels wide, or (far likelier) one colour image: refuse it.
  if (leading && ndim == 2 && (info.shape.back() == 3 || info.shape.back() == 4))
    throw py::value_error(what + ": shape " + shape + " reads as " + std::to_string(info.shape[0]) +
                          " images " + std::to_string(info.shape.back()) + " pixels wide; for one colour "
                          "image pass [image] or image[None]");
  const data::ImageLimits limits;
  const py::ssize_t h = info.shape[leading], w = info.shape[leading + 1];
  if (h < 1 || w < 1 || h > limits.max_side || w > limits.max_side || h * w > limits.max_pixels)
    throw py::value_error(what + ": an image of " + std::to_string(w) + "x" + std::to_string(h) +
                          " pixels (shape " + shape + ") is empty or over the limits (sides up to " +
                          std::to_string(limits.max_side) + ", " + std::to_string(limits.max_pixels) +
                          " pixels)");
  p.count = leading ? static_cast<int>(info.shape[0]) : 1;
  p.height = static_cast<int>(h);
  p.width = static_cast<int>(w);
  p.channels = colour ? static_cast<int>(info.shape.back()) : 1;
  return p;
}

data::GrayImage image_of(const Pixels& p, int index, bool rgb) {
  const size_t size = static_cast<size_t>(p.height) * p.width * p.channels;
  const auto* bytes = static_cast<const uint8_t*>(p.info.ptr) + size * index;
  return data::gray_from_pixels(bytes, p.width, p.height, p.channels, !rgb);
}

}  // namespace

data::GrayImage image_from_python(py::handle image, bool rgb, const std::string& what) {
  if (is_path(image)) {
    const py::object path = py::module_::import("os").attr("fspath")(image);
    if (!py::isinstance<py::str>(path)) throw py::type_error(what + ": give the path as str, not bytes");
    return data::read_image(path.cast<std::string>());
  }
  if (is_encoded(image)) {
    const std::string bytes = image.cast<std::string>();
    return data::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), what + " (bytes)");
  }
  if (!PyObject_CheckBuffer(image.ptr()))
    throw py::type_error(what + ": expected a path, the bytes of a JPEG or PNG file, or a uint8 array "
                         "H x W [x 3|4], got " + std::string(py::str(py::type::of(image).attr("__name__"))));
  return image_of(pixels_of(image, 0, what), 0, rgb);
}

std::vector<data::GrayImage> images_from_python(py::handle batch, bool rgb, const std::string& what) {
  std::vector<data::GrayImage> images;
  if (PyObject_CheckBuffer(batch.ptr()) && !is_encoded(batch)) {
    const Pixels p = pixels_of(batch, 1, what);
    for (int i = 0; i < p.count; ++i) images.push_back(image_of(p, i, rgb));
    return images;
  }
  if (!py::isinstance<py::list>(batch) && !py::isinstance<py::tuple>(batch))
    throw py::type_error(what + ": expected an array N x H x W [x 3|4] or a list of images, got " +
                         std::string(py::str(py::type::of(batch).attr("__name__"))));
  const py::sequence items = py::reinterpret_borrow<py::sequence>(batch);
  for (size_t i = 0; i < items.size(); ++i)
    images.push_back(image_from_python(items[i], rgb, what + "[" + std::to_string(i) + "]"));
  return images;
}

}  // namespace fer::python
