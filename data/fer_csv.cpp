// FER2013 CSV reader (emotion,pixels,Usage) from memory or a file, and the matching writer.
#include <cctype>
#include <charconv>
#include <limits>

#include "data/fer2013.h"
#include "engine/error.h"

namespace fer::data {

namespace {

// A bad row: the message carries "'<file>' line <n>: <why>".
struct RowError {
  std::string message;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Shortened copy of user text for an error message.
std::string quote(std::string_view s) {
  constexpr size_t kMax = 40;
  std::string out = "'";
  for (char c : s.substr(0, kMax)) out += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  return out + (s.size() > kMax ? "...'" : "'");
}

// Splits one line into comma-separated fields; a field wrapped in double quotes may contain
// commas ("" inside stands for one quote, kept as is - no FER field needs it).
std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (true) {
    size_t start = i;
    while (start < line.size() && (line[start] == ' ' || line[start] == '\t')) ++start;
    if (start < line.size() && line[start] == '"') {
      size_t end = start + 1;
      while (end < line.size()) {
        if (line[end] == '"') {
          if (end + 1 < line.size() && line[end + 1] == '"') {
            end += 2;
            continue;
          }
          break;
        }
        ++end;
      }
      fields.push_back(line.substr(start + 1, end - (start + 1)));  // end may be size(): unclosed
      i = line.find(',', std::min(end, line.size()));
    } else {
      const size_t comma = line.find(',', i);
      fields.push_back(line.substr(i, comma == std::string_view::npos ? std::string_view::npos : comma - i));
      i = comma;
    }
    if (i == std::string_view::npos) break;
    ++i;  // past the comma
  }
  return fields;
}

struct Columns {
  int emotion = -1, pixels = -1, usage = -1;
  size_t needed() const {
    return static_cast<size_t>(std::max(emotion, std::max(pixels, usage))) + 1;
  }
};

// Parses the 2304 pixels of one row into `out`; throws RowError.
void parse_pixels(std::string_view text, uint8_t* out, const std::string& where) {
  size_t count = 0;
  size_t i = 0;
  const size_t n = text.size();
  while (true) {
    while (i < n && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i >= n) break;
    size_t j = i;
    while (j < n && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    const std::string_view token = text.substr(i, j - i);
    long value = 0;
    const auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
    if (ec == std::errc::result_out_of_range)
      throw RowError{where + "pixel " + std::to_string(count + 1) + " value " + quote(token) +
                     " is out of range 0..255"};
    if (ec != std::errc() || ptr != token.data() + token.size())
      throw RowError{where + "pixel " + std::to_string(count + 1) + " " + quote(token) +
                     " is not an integer"};
    if (value < 0 || value > 255)
      throw RowError{where + "pixel " + std::to_string(count + 1) + " value " +
                     std::to_string(value) + " is out of range 0..255"};
    if (count < static_cast<size_t>(kFacePixels)) out[count] = static_cast<uint8_t>(value);
    ++count;
    i = j;
  }
  if (count != static_cast<size_t>(kFacePixels))
    throw RowError{where + std::to_string(count) + " pixel values, expected " +
                   std::to_string(kFacePixels) + " (48x48)"};
}

int parse_label(std::string_view text, const std::string& where) {
  const std::string_view t = trim(text);
  long value = 0;
  const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (t.empty() || ec == std::errc::invalid_argument || ptr != t.data() + t.size())
    throw RowError{where + "emotion " + quote(t) + " is not an integer"};
  if (ec == std::errc::result_out_of_range || value < 0 || value >= kFerClasses)
    throw RowError{where + "emotion label " + quote(t) + " is out of range 0..6"};
  return static_cast<int>(value);
}

}  // namespace

Dataset parse_fer_csv(std::string_view text, std::optional<Split> split, const std::string& name,
                      const ReadOptions& opts) {
  const std::string file = "FER2013 CSV '" + (name.empty() ? std::string("<memory>") : name) + "'";
  Dataset out;
  out.class_names = fer_class_names();

  // Lines, with \n or \r\n endings; a UTF-8 byte-order mark before the header is ignored.
  size_t pos = 0;
  size_t line_no = 0;
  auto next_line = [&](std::string_view& line) {
    if (pos >= text.size()) return false;
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = end + 1;
    ++line_no;
    return true;
  };

  std::string_view header;
  if (!next_line(header)) fail(file, " line 1: empty file, expected the header emotion,pixels,Usage");
  if (header.substr(0, 3) == "\xEF\xBB\xBF") header.remove_prefix(3);
  Columns col;
  const std::vector<std::string_view> names = split_fields(header);
  for (size_t c = 0; c < names.size(); ++c) {
    const std::string n = lower(trim(names[c]));
    int* slot = n == "emotion" ? &col.emotion : n == "pixels" ? &col.pixels : n == "usage" ? &col.usage : nullptr;
    if (!slot) continue;
    if (*slot >= 0) fail(file, " line 1: column '", n, "' appears twice in the header");
    *slot = static_cast<int>(c);
  }
  for (auto [idx, col_name] : {std::pair{col.emotion, "emotion"}, std::pair{col.pixels, "pixels"}})
    if (idx < 0)
      fail(file, " line 1: missing column '", col_name, "' (header must be emotion,pixels,Usage; got ",
           quote(header), ")");
  if (col.usage < 0 && split)
    fail(file, " line 1: missing column 'Usage' (needed to select the ", split_usage(*split),
         " rows; header must be emotion,pixels,Usage)");

  uint8_t face[kFacePixels];
  std::string_view line;
  while (next_line(line)) {
    if (trim(line).empty()) continue;
    const std::string where = file + " line " + std::to_string(line_no) + ": ";
    try {
      const std::vector<std::string_view> fields = split_fields(line);
      if (fields.size() < col.needed())
        throw RowError{where + "missing columns: " + std::to_string(fields.size()) +
                       " fields, expected " + std::to_string(col.needed()) + " (emotion,pixels,Usage)"};
      if (col.usage >= 0) {
        const std::string u = lower(trim(fields[col.usage]));
        const std::optional<Split> usage = u == "training"      ? std::optional{Split::Train}
                                           : u == "publictest"  ? std::optional{Split::Val}
                                           : u == "privatetest" ? std::optional{Split::Test}
                                                                : std::nullopt;
        if (!usage)
          throw RowError{where + "unknown Usage " + quote(trim(fields[col.usage])) +
                         " (expected Training, PublicTest or PrivateTest)"};
        if (split && *usage != *split) continue;
      }
      const int label = parse_label(fields[col.emotion], where);
      parse_pixels(fields[col.pixels], face, where);
      out.add(face, label, (name.empty() ? std::string("<memory>") : name) + ":" + std::to_string(line_no));
    } catch (const RowError& e) {
      if (!opts.skip_bad) throw Error(e.message);
      ++out.skipped;
      out.note_problem(e.message);
    }
  }
  return out;
}

Dataset read_fer_csv(const std::string& path, std::optional<Split> split, const ReadOptions& opts) {
  // The real file is ~300 MB; the bound only guards against pointing at something absurd.
  const std::vector<uint8_t> bytes = read_file_bytes(path, size_t{4} << 30);
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return parse_fer_csv(text, split, path, opts);
}

std::string format_fer_csv(const Dataset& data, Split usage, bool header) {
  FER_CHECK(data.class_names == fer_class_names(),
            "format_fer_csv: the dataset must have the 7 FER2013 classes in FER order");
  data.check();
  std::string out;
  out.reserve(data.size() * (kFacePixels * 4 + 20) + 32);
  if (header) out += "emotion,pixels,Usage\n";
  for (int64_t i = 0; i < data.size(); ++i) {
    out += std::to_string(data.labels[i]);
    out += ',';
    const uint8_t* px = data.image(i);
    for (int k = 0; k < kFacePixels; ++k) {
      if (k) out += ' ';
      out += std::to_string(px[k]);
    }
    out += ',';
    out += split_usage(usage);
    out += '\n';
  }
  return out;
}

}  // namespace fer::data
