// The operations HTTP layer (admin API, metrics) under idle connections.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "ops/http_endpoint.h"
#include "ops/http_task_queue.h"

using namespace helios;
using namespace helios::ops;

namespace {

UniqueFd idle_connection(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

}  // namespace

TEST_CASE("ElasticTaskQueue runs tasks at once while others block, and joins on shutdown") {
  ElasticTaskQueue q(64, std::chrono::milliseconds(200));
  std::atomic<bool> release{false};
  std::atomic<int> done{0};
  for (int i = 0; i < 20; ++i)
    q.enqueue([&] {
      while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ++done;
    });
  std::atomic<bool> quick{false};
  q.enqueue([&] { quick = true; });
  for (int i = 0; i < 1000 && !quick.load(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(quick.load());
  CHECK(q.threads() >= 21);
  release = true;
  q.shutdown();
  CHECK(done.load() == 20);
}

TEST_CASE("ElasticTaskQueue threads without work exit") {
  ElasticTaskQueue q(8, std::chrono::milliseconds(50));
  std::atomic<int> done{0};
  for (int i = 0; i < 8; ++i) q.enqueue([&] { ++done; });
  for (int i = 0; i < 2000 && (done.load() < 8 || q.threads() > 0); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(done.load() == 8);
  CHECK(q.threads() == 0);
  q.enqueue([&] { ++done; });  // and a new one starts again
  for (int i = 0; i < 2000 && done.load() < 9; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(done.load() == 9);
}

TEST_CASE("an HttpEndpoint answers while 300 idle connections are open, and closes them") {
  HttpEndpoint ep("test");
  ep.http().Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok", "text/plain");
  });
  REQUIRE(ep.bind("127.0.0.1", 0).ok());
  std::thread t([&] { ep.serve(); });
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 300; ++i) idle.push_back(idle_connection(ep.port()));
  httplib::Client c("127.0.0.1", ep.port());
  c.set_connection_timeout(1, 0);
  c.set_read_timeout(1, 0);
  auto start = std::chrono::steady_clock::now();
  auto r = c.Get("/health");
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(took < std::chrono::seconds(1));
  // The idle ones are closed by the server (deferred accept, then the keep-alive timeout).
  char b;
  auto closed = [&](const UniqueFd& fd) { return ::recv(fd.get(), &b, 1, MSG_DONTWAIT) == 0; };
  for (int i = 0; i < 100 && !(closed(idle.front()) && closed(idle.back())); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(closed(idle.front()));
  CHECK(closed(idle.back()));
  ep.stop();
  t.join();
}
