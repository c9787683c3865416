// The ONNX file format, written by hand: the protobuf wire format, and the seven ONNX messages an
// exported model needs (onnx/onnx.proto: ModelProto, OperatorSetIdProto, GraphProto, NodeProto,
// AttributeProto, TensorProto, ValueInfoProto with its TypeProto / TensorShapeProto).
//
// Protobuf in one paragraph: a message is a sequence of fields; each field starts with a key,
// the varint (field_number << 3 | wire_type), then its value in the form the wire type says:
//   wire type 0  varint: 7 bits a byte, least significant group first, the high bit set on every
//                byte but the last (300 = 0b1'0010'1100 -> 0xAC 0x02); int64 and int32 fields,
//                negative ones as their 64-bit two's complement (ten bytes), enums, bools
//   wire type 2  length-delimited: a varint byte count, then the bytes: strings, bytes, embedded
//                messages (encoded on their own, then written as bytes), packed repeated scalars
//                (the varints of all elements one after the other)
//   wire type 5  fixed32: four bytes little-endian (float fields)
// A repeated field is its key and value again and again (or once, packed). Fields may come in any
// order; readers skip the ones they do not know. Nothing else: no header, no field names.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fer::onnx {

// ---- Protobuf wire format ------------------------------------------------------------------------
class ProtoWriter {
 public:
  void varint_field(int field, int64_t value);          // int64, int32, enum, bool
  void float_field(int field, float value);             // fixed32, little-endian
  void bytes_field(int field, std::string_view bytes);  // string, bytes
  void message_field(int field, const ProtoWriter& message) { bytes_field(field, message.bytes()); }
  void packed_varints(int field, const std::vector<int64_t>& values);  // repeated int64, packed
  void packed_floats(int field, const std::vector<float>& values);     // repeated float, packed
  const std::string& bytes() const { return out_; }

 private:
  void key(int field, int wire_type) { varint(static_cast<uint64_t>(field) << 3 | wire_type); }
  void varint(uint64_t value);
  std::string out_;
};

// ---- ONNX messages -------------------------------------------------------------------------------
// TensorProto.DataType values used here.
enum class DataType : int32_t { FLOAT = 1, INT64 = 7 };

// A constant: an initializer of the graph, or a tensor-valued attribute. raw_data holds the
// elements little-endian, row-major (the engine's own layout on x86).
struct TensorProto {
  std::string name;
  std::vector<int64_t> dims;
  DataType data_type = DataType::FLOAT;
  std::string raw_data;
  static TensorProto floats(std::string name, std::vector<int64_t> dims, const std::vector<float>& values);
  static TensorProto int64s(std::string name, std::vector<int64_t> dims, const std::vector<int64_t>& values);
  ProtoWriter encode() const;
};

struct AttributeProto {
  enum Type { FLOAT = 1, INT = 2, STRING = 3, TENSOR = 4, FLOATS = 6, INTS = 7 };  // AttributeType
  std::string name;
  Type type = INT;
  float f = 0.0f;
  int64_t i = 0;
  std::string s;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  ProtoWriter encode() const;
};
AttributeProto attr_int(std::string name, int64_t value);
AttributeProto attr_float(std::string name, float value);
AttributeProto attr_string(std::string name, std::string value);
AttributeProto attr_ints(std::string name, std::vector<int64_t> values);

struct NodeProto {
  std::vector<std::string> inputs, outputs;  // value names; "" marks an omitted optional input
  std::string name, op_type;
  std::vector<AttributeProto> attributes;
  ProtoWriter encode() const;
};

// A graph input or output: its name, float elements, and its shape, each dimension a number or,
// when `symbolic` names it ("N"), a size only known at run time.
struct ValueInfoProto {
  struct Dim {
    int64_t value = 0;
    std::string symbolic;
  };
  std::string name;
  std::vector<Dim> shape;
  ProtoWriter encode() const;
};

struct GraphProto {
  std::string name, doc_string;
  std::vector<NodeProto> nodes;  // in an order where every input is produced before its use
  std::vector<TensorProto> initializers;
  std::vector<ValueInfoProto> inputs, outputs;
  ProtoWriter encode() const;
};

struct ModelProto {
  int64_t ir_version = 7;  // IR version 7 is the one that goes with opset 13
  int64_t opset = 13;      // of the default domain ""
  std::string producer_name, producer_version, doc_string;
  std::vector<std::pair<std::string, std::string>> metadata;  // metadata_props
  GraphProto graph;
  ProtoWriter encode() const;
};

}  // namespace fer::onnx
