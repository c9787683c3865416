// The field numbers below are those of onnx/onnx.proto (they never change: a renumbered field
// would break every file written before). Each encode() writes its message's fields in number
// order, which readers do not require but which makes a hex dump easier to follow.
#include "models/export/onnx_proto.h"

#include <bit>
#include <cstring>

namespace fer::onnx {

static_assert(std::endian::native == std::endian::little,
              "raw_data and fixed32 are little-endian: this writer copies the host's bytes");

namespace {
enum WireType { VARINT = 0, LENGTH_DELIMITED = 2, FIXED32 = 5 };

template <typename T>
std::string raw_bytes(const std::vector<T>& values) {
  std::string out(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}
}  // namespace

// ---- Protobuf wire format ------------------------------------------------------------------------
void ProtoWriter::varint(uint64_t value) {
  while (value >= 0x80) {
    out_.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out_.push_back(static_cast<char>(value));
}

void ProtoWriter::varint_field(int field, int64_t value) {
  key(field, VARINT);
  varint(static_cast<uint64_t>(value));  // negative: two's complement, ten bytes
}

void ProtoWriter::float_field(int field, float value) {
  key(field, FIXED32);
  char bytes[4];
  std::memcpy(bytes, &value, 4);
  out_.append(bytes, 4);
}

void ProtoWriter::bytes_field(int field, std::string_view bytes) {
  key(field, LENGTH_DELIMITED);
  varint(bytes.size());
  out_.append(bytes);
}

void ProtoWriter::packed_varints(int field, const std::vector<int64_t>& values) {
  ProtoWriter body;
  for (int64_t v : values) body.varint(static_cast<uint64_t>(v));
  bytes_field(field, body.bytes());
}

void ProtoWriter::packed_floats(int field, const std::vector<float>& values) {
  bytes_field(field, raw_bytes(values));
}

// ---- TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9 ------------------------------
TensorProto TensorProto::floats(std::string name, std::vector<int64_t> dims,
                                const std::vector<float>& values) {
  return {std::move(name), std::move(dims), DataType::FLOAT, raw_bytes(values)};
}

TensorProto TensorProto::int64s(std::string name, std::vector<int64_t> dims,
                                const std::vector<int64_t>& values) {
  return {std::move(name), std::move(dims), DataType::INT64, raw_bytes(values)};
}

ProtoWriter TensorProto::encode() const {
  ProtoWriter w;
  if (!dims.empty()) w.packed_varints(1, dims);  // a scalar has no dims
  w.varint_field(2, static_cast<int32_t>(data_type));
  w.bytes_field(8, name);
  w.bytes_field(9, raw_data);
  return w;
}

// ---- AttributeProto: name = 1, f = 2, i = 3, s = 4, floats = 7, ints = 8, type = 20 ------------
namespace {
AttributeProto attribute(std::string name, AttributeProto::Type type) {
  AttributeProto a;
  a.name = std::move(name);
  a.type = type;
  return a;
}
}  // namespace

AttributeProto attr_int(std::string name, int64_t value) {
  AttributeProto a = attribute(std::move(name), AttributeProto::INT);
  a.i = value;
  return a;
}
AttributeProto attr_float(std::string name, float value) {
  AttributeProto a = attribute(std::move(name), AttributeProto::FLOAT);
  a.f = value;
  return a;
}
AttributeProto attr_string(std::string name, std::string value) {
  AttributeProto a = attribute(std::move(name), AttributeProto::STRING);
  a.s = std::move(value);
  return a;
}
AttributeProto attr_ints(std::string name, std::vector<int64_t> values) {
  AttributeProto a = attribute(std::move(name), AttributeProto::INTS);
  a.ints = std::move(values);
  return a;
}

ProtoWriter AttributeProto::encode() const {
  ProtoWriter w;
  w.bytes_field(1, name);
  switch (type) {
    case FLOAT: w.float_field(2, f); break;
    case INT: w.varint_field(3, i); break;
    case STRING: w.bytes_field(4, s); break;
    case FLOATS: w.packed_floats(7, floats); break;
    case INTS: w.packed_varints(8, ints); break;
    case TENSOR: break;  // not used by the exporter (constants are initializers)
  }
  w.varint_field(20, type);
  return w;
}

// ---- NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5 --------------------
ProtoWriter NodeProto::encode() const {
  ProtoWriter w;
  for (const std::string& in : inputs) w.bytes_field(1, in);
  for (const std::string& out : outputs) w.bytes_field(2, out);
  w.bytes_field(3, name);
  w.bytes_field(4, op_type);
  for (const AttributeProto& a : attributes) w.message_field(5, a.encode());
  return w;
}

// ---- ValueInfoProto: name = 1, type = 2 -----------------------------------------------------------
//   TypeProto: tensor_type = 1;  TypeProto.Tensor: elem_type = 1, shape = 2;
//   TensorShapeProto: dim = 1;   Dimension: dim_value = 1, dim_param = 2
ProtoWriter ValueInfoProto::encode() const {
  ProtoWriter shape_proto;
  for (const Dim& d : shape) {
    ProtoWriter dim;
    if (d.symbolic.empty())
      dim.varint_field(1, d.value);
    else
      dim.bytes_field(2, d.symbolic);
    shape_proto.message_field(1, dim);
  }
  ProtoWriter tensor_type, type;
  tensor_type.varint_field(1, static_cast<int32_t>(DataType::FLOAT));
  tensor_type.message_field(2, shape_proto);
  type.message_field(1, tensor_type);
  ProtoWriter w;
  w.bytes_field(1, name);
  w.message_field(2, type);
  return w;
}

// ---- GraphProto: node = 1, name = 2, initializer = 5, doc_string = 10, input = 11, output = 12 ---
ProtoWriter GraphProto::encode() const {
  ProtoWriter w;
  for (const NodeProto& n : nodes) w.message_field(1, n.encode());
  w.bytes_field(2, name);
  for (const TensorProto& t : initializers) w.message_field(5, t.encode());
  if (!doc_string.empty()) w.bytes_field(10, doc_string);
  for (const ValueInfoProto& v : inputs) w.message_field(11, v.encode());
  for (const ValueInfoProto& v : outputs) w.message_field(12, v.encode());
  return w;
}

// ---- ModelProto: ir_version = 1, producer_name = 2, producer_version = 3, doc_string = 6, --------
//      graph = 7, opset_import = 8, metadata_props = 14
//   OperatorSetIdProto: domain = 1, version = 2;  StringStringEntryProto: key = 1, value = 2
ProtoWriter ModelProto::encode() const {
  ProtoWriter w;
  w.varint_field(1, ir_version);
  w.bytes_field(2, producer_name);
  w.bytes_field(3, producer_version);
  if (!doc_string.empty()) w.bytes_field(6, doc_string);
  w.message_field(7, graph.encode());
  ProtoWriter opset_id;
  opset_id.bytes_field(1, "");  // the default domain, ai.onnx
  opset_id.varint_field(2, opset);
  w.message_field(8, opset_id);
  for (const auto& [key, value] : metadata) {
    ProtoWriter entry;
    entry.bytes_field(1, key);
    entry.bytes_field(2, value);
    w.message_field(14, entry);
  }
  return w;
}

}  // namespace fer::onnx
