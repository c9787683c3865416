// serve_load: a load generator for fer_serve. Sends --requests POST /api/predict requests of one
// image from --concurrency clients at once (each a keep-alive connection on its own thread, each
// sending its next request as soon as the previous answer arrived), then prints the throughput,
// the latency percentiles seen by the clients and by the server (its "elapsed_ms"), and the
// errors: transport failures, non-200 answers, and 200 answers whose faces differ from the first
// answer's (the same image must always get the same answer).
//
//   fer_serve --port 8080 --quiet &
//   serve_load --image face.jpg --port 8080 --requests 400 --concurrency 4
//
// Exit status 0 when every request succeeded with the same answer, 1 otherwise.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "apps/cli/args.h"
#include "data/image.h"
#include "engine/error.h"

using namespace fer;
using Clock = std::chrono::steady_clock;

namespace {

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

std::string content_type_of(const std::vector<uint8_t>& bytes) {
  if (bytes.size() >= 8 && bytes[0] == 0x89 && bytes[1] == 'P') return "image/png";
  return "image/jpeg";
}

struct Outcome {
  std::vector<double> latency_ms, server_ms;
  int transport = 0, non_200 = 0, differing = 0;
};

int run(int argc, char** argv) {
  cli::Args args("serve_load", "Load test of a running fer_serve: N requests from C concurrent "
                               "clients; prints requests/s, latency p50/p90/p99 and errors.");
  args.option("image", "", "JPEG or PNG file to send (required)")
      .option("host", "127.0.0.1", "fer_serve's address")
      .option("port", "8080", "fer_serve's port")
      .option("requests", "400", "requests in total")
      .option("concurrency", "4", "concurrent clients")
      .option("detect", "1", "1: find faces; 0: the image is one face crop")
      .flag("multipart", false, "send multipart/form-data instead of the raw image body");
  args.parse(argc, argv);
  FER_CHECK(!args.str("image").empty(), "--image is required");
  const int64_t total = args.integer("requests"), clients = args.integer("concurrency");
  FER_CHECK(total >= 1, "--requests ", total, ": expected >= 1");
  FER_CHECK(clients >= 1 && clients <= 256, "--concurrency ", clients, ": expected 1..256");
  const std::vector<uint8_t> bytes = data::read_file_bytes(args.str("image"), 64u << 20);
  const std::string body(bytes.begin(), bytes.end()), type = content_type_of(bytes);
  const std::string host = args.str("host");
  const int port = static_cast<int>(args.integer("port"));
  const std::string path = "/api/predict?detect=" + args.str("detect");
  const bool multipart = args.boolean("multipart");

  auto send = [&](httplib::Client& client) {
    if (multipart) {
      httplib::MultipartFormDataItems items{{"file", body, "upload", type}};
      return client.Post(path.c_str(), items);
    }
    return client.Post(path.c_str(), body, type.c_str());
  };

  // The first answer is the reference (and warms the server up); it is not timed.
  std::string reference;
  {
    httplib::Client client(host, port);
    auto res = send(client);
    FER_CHECK(res, "cannot reach fer_serve at http://", host, ":", port, " (",
              httplib::to_string(res.error()), ")");
    FER_CHECK(res->status == 200, "fer_serve answered ", res->status, ": ", res->body);
    reference = nlohmann::json::parse(res->body).at("faces").dump();
  }

  std::atomic<int64_t> next{0};
  std::mutex merge;
  Outcome all;
  auto worker = [&] {
    Outcome mine;
    httplib::Client client(host, port);
    client.set_keep_alive(true);
    client.set_tcp_nodelay(true);  // as browsers do: no Nagle delay between headers and body
    client.set_read_timeout(60, 0);
    while (next.fetch_add(1) < total) {
      const auto t0 = Clock::now();
      auto res = send(client);
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (!res) {
        ++mine.transport;
        continue;
      }
      if (res->status != 200) {
        ++mine.non_200;
        continue;
      }
      mine.latency_ms.push_back(ms);
      try {
        const auto answer = nlohmann::json::parse(res->body);
        mine.server_ms.push_back(answer.at("elapsed_ms").get<double>());
        if (answer.at("faces").dump() != reference) ++mine.differing;
      } catch (const std::exception&) {
        ++mine.differing;
      }
    }
    std::lock_guard<std::mutex> lock(merge);
    all.latency_ms.insert(all.latency_ms.end(), mine.latency_ms.begin(), mine.latency_ms.end());
    all.server_ms.insert(all.server_ms.end(), mine.server_ms.begin(), mine.server_ms.end());
    all.transport += mine.transport;
    all.non_200 += mine.non_200;
    all.differing += mine.differing;
  };

  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int64_t i = 0; i < clients; ++i) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  std::sort(all.latency_ms.begin(), all.latency_ms.end());
  std::sort(all.server_ms.begin(), all.server_ms.end());
  const int errors = all.transport + all.non_200 + all.differing;
  double mean = 0;
  for (double v : all.latency_ms) mean += v / static_cast<double>(all.latency_ms.size());
  std::printf("serve_load: %lld requests, %lld clients, %s (%zu bytes, %s, %s) -> http://%s:%d%s\n",
              static_cast<long long>(total), static_cast<long long>(clients),
              args.str("image").c_str(), bytes.size(), type.c_str(),
              multipart ? "multipart" : "raw body", host.c_str(), port, path.c_str());
  std::printf("  throughput  %.1f requests/s (%.2f s)\n", static_cast<double>(total) / seconds, seconds);
  std::printf("  latency ms  p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f  (client, %zu answers)\n",
              percentile(all.latency_ms, 50), percentile(all.latency_ms, 90),
              percentile(all.latency_ms, 99), all.latency_ms.empty() ? 0.0 : all.latency_ms.back(),
              mean, all.latency_ms.size());
  std::printf("  server ms   p50 %.2f  p90 %.2f  p99 %.2f  (decode + detect + model, its elapsed_ms)\n",
              percentile(all.server_ms, 50), percentile(all.server_ms, 90),
              percentile(all.server_ms, 99));
  std::printf("  errors      %d (transport %d, non-200 %d, answer differing from the first %d)\n",
              errors, all.transport, all.non_200, all.differing);
  return errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return cli::run_main("serve_load", run, argc, argv); }
