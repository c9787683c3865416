// FER2013 folder reader: <split_dir>/<class>/*.jpg|jpeg|png, decoded in parallel.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <thread>

#include "data/fer2013.h"
#include "engine/error.h"

namespace fer::data {

namespace fs = std::filesystem;

namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

bool is_hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

// Image files of one folder, sorted by name (so the item order never depends on the file system).
std::vector<fs::path> list_images(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (is_hidden(e.path()) || !is_image_file(e.path())) continue;
    if (e.is_regular_file(ec)) files.push_back(e.path());
  }
  if (ec) fail("FER2013 folder '", dir.string(), "': cannot list (", ec.message(), ")");
  std::sort(files.begin(), files.end());
  return files;
}

std::string class_list() {
  std::string s;
  for (const char* n : kFerClassNames) s += (s.empty() ? "" : ", ") + std::string(n);
  return s;
}

}  // namespace

Dataset read_fer_folder(const std::string& split_dir, const ReadOptions& opts) {
  std::error_code ec;
  if (!fs::is_directory(split_dir, ec))
    fail("FER2013 data not found: '", split_dir, "' is not a directory. ", fer2013_help());

  Dataset out;
  out.class_names = fer_class_names();

  // Class folders by name.
  std::vector<fs::path> class_dir(kFerClasses);
  std::vector<fs::path> subdirs;
  for (const fs::directory_entry& e : fs::directory_iterator(split_dir, ec))
    if (!is_hidden(e.path()) && e.is_directory(ec)) subdirs.push_back(e.path());
  std::sort(subdirs.begin(), subdirs.end());
  for (const fs::path& dir : subdirs) {
    const int id = fer_class_id(dir.filename().string());
    if (id < 0) {
      const std::string msg = "FER2013 folder '" + split_dir + "': unknown class folder '" +
                              dir.string() + "' (expected " + class_list() + ")";
      if (!opts.skip_bad) fail(msg);
      out.skipped += static_cast<int64_t>(list_images(dir).size());
      out.note_problem(msg);
      continue;
    }
    if (!class_dir[id].empty())
      fail("FER2013 folder '", split_dir, "': class '", kFerClassNames[id], "' appears twice ('",
           class_dir[id].string(), "' and '", dir.string(), "')");
    class_dir[id] = dir;
  }

  // The files of every class, ordered by class id then name.
  std::vector<fs::path> files;
  std::vector<int> file_label;
  for (int id = 0; id < kFerClasses; ++id) {
    std::vector<fs::path> members;
    if (!class_dir[id].empty()) members = list_images(class_dir[id]);
    if (members.empty() && !opts.allow_empty_class) {
      const std::string msg =
          class_dir[id].empty()
              ? "FER2013 folder '" + split_dir + "': class folder '" + kFerClassNames[id] + "' is missing"
              : "FER2013 folder '" + split_dir + "': class folder '" + class_dir[id].string() +
                    "' has no .jpg/.jpeg/.png images";
      if (!opts.skip_bad) fail(msg, " (set allow_empty_class to accept this)");
      out.note_problem(msg);
    }
    for (fs::path& f : members) {
      files.push_back(std::move(f));
      file_label.push_back(id);
    }
  }

  // Decode in parallel; each thread takes chunks of files from a shared counter.
  const size_t n = files.size();
  std::vector<uint8_t> pixels(n * kFacePixels);
  std::vector<std::string> errors(n);
  std::atomic<size_t> next{0};
  auto work = [&] {
    constexpr size_t kChunk = 64;
    for (size_t begin; (begin = next.fetch_add(kChunk)) < n;) {
      for (size_t i = begin; i < std::min(n, begin + kChunk); ++i) {
        try {
          const std::vector<uint8_t> face = read_face(files[i].string(), opts.limits);
          std::memcpy(pixels.data() + i * kFacePixels, face.data(), kFacePixels);
        } catch (const std::exception& e) {
          errors[i] = e.what();
          if (errors[i].empty()) errors[i] = "image '" + files[i].string() + "': unreadable";
        }
      }
    }
  };
  int threads = opts.threads > 0 ? opts.threads : static_cast<int>(std::thread::hardware_concurrency());
  threads = std::max(1, std::min<int>(threads, static_cast<int>(n / 256) + 1));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();

  // Gather, skipping (or throwing on) the failures.
  size_t bad = 0, first_bad = n;
  for (size_t i = 0; i < n; ++i)
    if (!errors[i].empty()) {
      ++bad;
      first_bad = std::min(first_bad, i);
    }
  if (bad > 0 && !opts.skip_bad) {
    if (bad == 1) fail(errors[first_bad]);
    fail(errors[first_bad], " (and ", bad - 1, " more bad images in '", split_dir, "')");
  }
  out.pixels.reserve((n - bad) * kFacePixels);
  out.labels.reserve(n - bad);
  for (size_t i = 0; i < n; ++i) {
    if (!errors[i].empty()) {
      ++out.skipped;
      out.note_problem(std::move(errors[i]));
      continue;
    }
    out.add(pixels.data() + i * kFacePixels, file_label[i], files[i].string());
  }
  return out;
}

}  // namespace fer::data
