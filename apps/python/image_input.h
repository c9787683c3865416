// What the Python module accepts as an image, turned into the engine's gray images.
//
//   a path          str or os.PathLike naming a JPEG or PNG file: decoded as fer_predict decodes it
//   encoded bytes   bytes / bytearray holding a JPEG or PNG file's content
//   pixels          any C-contiguous buffer (numpy array, memoryview) of uint8, shaped H x W (gray),
//                   H x W x 3 (colour) or H x W x 4 (colour + alpha, ignored); colour is in
//                   OpenCV's B, G, R order unless `rgb` (cv2.imread gives BGR, PIL and imageio RGB)
//
// Numpy is not needed: the pixels are read through the buffer protocol. Every rejection is a
// ValueError (or TypeError for an object of the wrong kind) naming the shape, dtype or file.
// Called with the GIL held: the pixels are copied before any computation releases it.
#pragma once
#include <string>
#include <vector>

#include <pybind11/pybind11.h>

#include "data/image.h"

namespace fer::python {

namespace py = pybind11;

// One image; `what` names the argument in error messages ("image").
data::GrayImage image_from_python(py::handle image, bool rgb, const std::string& what = "image");

// A batch of images: an array N x H x W (gray) or N x H x W x 3|4, or a sequence (list, tuple) of
// images as above (paths, bytes or arrays, of any sizes).
std::vector<data::GrayImage> images_from_python(py::handle batch, bool rgb, const std::string& what = "faces");

}  // namespace fer::python
