#include "ops/http_endpoint.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "common/log.h"
#include "ops/http_task_queue.h"

namespace helios::ops {

// httplib::Server with access to its listening socket (to raise the listen backlog, which
// httplib sets to 5).
class HttpEndpoint::Server final : public httplib::Server {
 public:
  int listen_fd() const { return int(svr_sock_.load()); }
};

HttpEndpoint::HttpEndpoint(std::string name)
    : name_(std::move(name)), http_(std::make_unique<Server>()) {
  http_->new_task_queue = [] { return new ElasticTaskQueue(kMaxThreads, kThreadIdleExit); };
  // SO_REUSEADDR only: no SO_REUSEPORT, so a successor process during an online restart does
  // not share (and split) the port with the process it replaces.
  http_->set_socket_options([](socket_t sock) {
    int one = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // A connection reaches accept() only once it has sent data (or after the deferral): one
    // that connects and stays silent costs no thread at all.
    int defer = int(kDeferAcceptSec);
    ::setsockopt(sock, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer);
  });
  http_->set_keep_alive_timeout(kKeepAliveTimeoutSec);
  http_->set_keep_alive_max_count(kKeepAliveMax);
  http_->set_read_timeout(kIoTimeoutSec, 0);
  http_->set_write_timeout(kIoTimeoutSec, 0);
  http_->set_payload_max_length(64 * 1024);  // no endpoint takes a body
}

HttpEndpoint::~HttpEndpoint() {
  stop();
}

httplib::Server& HttpEndpoint::http() {
  return *http_;
}

Status HttpEndpoint::bind(const std::string& host, uint16_t port) {
  errno = 0;
  host_ = host;
  if (port == 0) {
    int p = http_->bind_to_any_port(host);
    if (p <= 0) return Error::from_errno(name_ + ": cannot bind " + host + ":0");
    port_ = uint16_t(p);
  } else {
    if (!http_->bind_to_port(host, port)) {
      int e = errno ? errno : EADDRINUSE;
      return Error{e, name_ + ": cannot listen on " + host + ":" + std::to_string(port) + ": " +
                          std::strerror(e)};
    }
    port_ = port;
  }
  ::listen(http_->listen_fd(), kBacklog);  // best effort: a larger accept queue
  return {};
}

void HttpEndpoint::serve() {
  serving_.store(true);
  while (!stop_requested_.load()) {
    http_->listen_after_bind();
    if (stop_requested_.load()) break;
    // httplib closes its listening socket on any accept() error but EMFILE (ECONNABORTED from
    // a peer that reset before it was accepted, say): listen again rather than go deaf.
    log::warn("{}: the listener stopped on an accept error; listening again on port {}", name_,
              port_);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (auto st = bind(host_, port_); !st) {
      log::error("{}: {}", name_, st.error().message);
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
  serving_.store(false);
}

void HttpEndpoint::stop() {
  stop_requested_.store(true);
  // httplib's stop() does nothing until listen_after_bind() has started: wait for it (bounded)
  // when serve() is on its way, else the listener would never see the stop.
  for (int i = 0; i < 2000 && serving_.load() && !http_->is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  http_->stop();
}

}  // namespace helios::ops
