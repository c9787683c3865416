// Device: where a tensor's storage lives. The engine has two: the host CPU and one CUDA GPU.
#pragma once
#include <string>

namespace fer {

enum class Device { CPU, CUDA };

inline const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }
Device parse_device(const std::string& name);  // "cpu" | "cuda"; throws on anything else

}  // namespace fer
