// fer_serve's HTTP server: cpp-httplib's Server with the guards a public server needs against
// slow, crafted or greedy clients (what nginx's client_header_timeout / client_body_timeout,
// limit_conn and listen backlog do):
//
//   - a deadline for reading each whole request (request line, headers and body), however slowly
//     the bytes trickle in: httplib bounds only each single read, so a client sending one header
//     line every few seconds held a worker thread for as long as it liked;
//   - at most `max_connections` connections in all and `max_per_client` from one address: the
//     excess is answered 503 at once and closed;
//   - a listen backlog of 128 instead of httplib's 5.
//
// It replaces httplib's connection loop (Server::process_and_close_socket, a virtual hook) with
// the same keep-alive loop over a socket stream whose reads stop at the request's deadline; the
// parsing, routing and handlers stay httplib's. The request-level checks (methods, content types
// and encodings, chunked bodies) are fer_serve's pre-routing handler (apps/serve/requests.h).
#pragma once
#include <httplib.h>

#include <chrono>
#include <map>
#include <mutex>
#include <string>

namespace fer {

struct ServerGuards {
  std::chrono::milliseconds request_deadline{10000};  // to read one whole request
  int max_connections = 256;
  int max_per_client = 64;
  int backlog = 128;
};

class GuardedServer : public httplib::Server {
 public:
  explicit GuardedServer(ServerGuards guards);
  // bind_to_port / bind_to_any_port, then a backlog of guards.backlog.
  bool bind(const std::string& host, int port);
  int bound_port() const { return bound_port_; }
  int open_connections() const;
  // Called from a handler: close this connection once its response is sent (the request's body
  // was refused unread, so nothing after it on the connection can be parsed). The socket is then
  // closed lingeringly: the client still sending its body receives the answer instead of a reset.
  static void close_after_response();

 private:
  bool process_and_close_socket(socket_t sock) override;
  bool admit(const std::string& client);  // counts the connection; false when over a limit
  void release(const std::string& client);

  ServerGuards guards_;
  int listen_socket_ = -1, bound_port_ = -1;
  mutable std::mutex mutex_;
  std::map<std::string, int> per_client_;
  int open_ = 0;
};

}  // namespace fer
