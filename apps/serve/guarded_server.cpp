// The guarded connection loop of fer_serve; see guarded_server.h.
#include "apps/serve/guarded_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace fer {

namespace {
using Clock = std::chrono::steady_clock;
thread_local bool g_close_after_response = false;  // set by a handler on this worker thread

// The peer's address as text ("127.0.0.1", "::1"), or "" when unknown.
std::string peer_address(int sock) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getpeername(sock, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "";
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, text, sizeof text);
  else if (addr.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr, text, sizeof text);
  return text;
}

// Waits until `sock` is readable (or writable) or `timeout` has passed; true when ready.
bool wait_for(int sock, short events, std::chrono::milliseconds timeout) {
  pollfd p{sock, events, 0};
  const int ms = static_cast<int>(std::max<int64_t>(0, timeout.count()));
  return ::poll(&p, 1, ms) > 0 && (p.revents & (events | POLLHUP | POLLERR));
}

// A socket stream whose reads end at a deadline: each read waits at most until then, so a request
// is read whole within the deadline or the connection is dropped. Writes wait up to 5 s for room.
class DeadlineStream : public httplib::Stream {
 public:
  DeadlineStream(int sock, Clock::time_point deadline) : sock_(sock), deadline_(deadline) {}
  bool is_readable() const override { return wait_for(sock_, POLLIN, remaining()); }
  bool is_writable() const override { return wait_for(sock_, POLLOUT, std::chrono::milliseconds(5000)); }
  ssize_t read(char* ptr, size_t size) override {
    if (!is_readable()) return -1;
    ssize_t n;
    do n = ::recv(sock_, ptr, size, 0); while (n < 0 && errno == EINTR);
    return n;
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable()) return -1;
    ssize_t n;
    do n = ::send(sock_, ptr, size, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
    return n;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(false, ip, port); }
  socket_t socket() const override { return sock_; }

 private:
  std::chrono::milliseconds remaining() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
  }
  void address(bool remote, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ip.clear();
    port = 0;
    auto* a = reinterpret_cast<sockaddr*>(&addr);
    if ((remote ? getpeername(sock_, a, &len) : getsockname(sock_, a, &len)) != 0) return;
    char text[INET6_ADDRSTRLEN] = {};
    if (addr.ss_family == AF_INET) {
      auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
      inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
      port = ntohs(v4->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
      inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
      port = ntohs(v6->sin6_port);
    }
    ip = text;
  }
  int sock_;
  Clock::time_point deadline_;
};

// Closing a socket with unread bytes makes the kernel reset the connection, and a client still
// sending its body (a refused upload) then loses the answer already sent. So, as nginx's
// lingering close: stop sending, read and discard what still arrives for a moment, then close.
void lingering_close(int sock) {
  ::shutdown(sock, SHUT_WR);
  const auto end = Clock::now() + std::chrono::milliseconds(2000);
  char sink[16384];
  size_t drained = 0;
  while (drained < (64u << 20)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    if (left.count() <= 0 || !wait_for(sock, POLLIN, left)) break;
    const ssize_t n = ::recv(sock, sink, sizeof sink, 0);
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
  ::close(sock);
}

void send_busy(int sock) {
  static const char kBusy[] =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
      "Retry-After: 1\r\nContent-Length: 56\r\n\r\n{\"error\": \"too many connections: try again in a moment\"}";
  (void)::send(sock, kBusy, sizeof kBusy - 1, MSG_NOSIGNAL);
}
}  // namespace

void GuardedServer::close_after_response() { g_close_after_response = true; }

GuardedServer::GuardedServer(ServerGuards guards) : guards_(guards) {
  set_socket_options([this](socket_t sock) {
    int yes = 1;  // not SO_REUSEPORT (httplib's default): a second server could share the port
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_socket_ = sock;
  });
}

bool GuardedServer::bind(const std::string& host, int port) {
  bound_port_ = port == 0 ? bind_to_any_port(host) : (bind_to_port(host, port) ? port : -1);
  if (bound_port_ <= 0) return false;
  ::listen(listen_socket_, guards_.backlog);  // httplib listened with a backlog of 5
  return true;
}

int GuardedServer::open_connections() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return open_;
}

bool GuardedServer::admit(const std::string& client) {
  std::lock_guard<std::mutex> lock(mutex_);
  int& mine = per_client_[client];
  if (open_ >= guards_.max_connections || mine >= guards_.max_per_client) {
    if (mine == 0) per_client_.erase(client);
    return false;
  }
  ++mine;
  ++open_;
  return true;
}

void GuardedServer::release(const std::string& client) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (--per_client_[client] <= 0) per_client_.erase(client);
  --open_;
}

// httplib's keep-alive loop (process_server_socket_core in httplib 0.11), each request read
// through a DeadlineStream.
bool GuardedServer::process_and_close_socket(socket_t sock) {
  const std::string client = peer_address(sock);
  bool ok = false;
  if (admit(client)) {
    constexpr int kKeepAliveRequests = 1000;
    constexpr std::chrono::milliseconds kKeepAliveIdle{2000};  // an idle connection holds a thread
    for (int served = 0; served < kKeepAliveRequests && is_running(); ++served) {
      if (served > 0 && !wait_for(sock, POLLIN, kKeepAliveIdle)) break;
      DeadlineStream stream(sock, Clock::now() + guards_.request_deadline);
      bool closed = false;
      g_close_after_response = false;
      ok = process_request(stream, served + 1 == kKeepAliveRequests, closed, nullptr);
      if (!ok || closed || g_close_after_response) break;
    }
    release(client);
  } else {
    send_busy(sock);
  }
  lingering_close(sock);
  return ok;
}

}  // namespace fer
