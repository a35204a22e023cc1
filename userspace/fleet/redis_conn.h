// One blocking Redis connection, used only by the fleet agent's own thread (never a worker).
// hiredis does the protocol (redisFormatCommandArgv, redisReader); the connection is our own
// socket, so that rediss:// can run it through OpenSSL (Debian's hiredis 0.14 has no TLS).
// Connects lazily, with the configured timeout for connect and every command; any error drops
// the connection so the next call reconnects.
#pragma once

#include <hiredis/hiredis.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "config/config.h"
#include "io/tls.h"

namespace helios::fleet {

// A reply as plain values: integers, strings (bulk or status) and nested arrays.
struct RedisValue {
  enum class Kind { kNil, kInt, kString, kArray } kind = Kind::kNil;
  long long integer = 0;
  std::string str;
  std::vector<RedisValue> array;
};

class RedisConn {
 public:
  explicit RedisConn(const config::FleetConfig& cfg) : cfg_(cfg) {}
  // Runs one command (argv form, binary-safe). Error: unreachable, timeout, TLS, or an error
  // reply.
  Result<RedisValue> command(const std::vector<std::string>& argv);
  bool connected() const { return fd_.valid(); }

 private:
  struct FreeSsl {
    void operator()(SSL* s) const { SSL_free(s); }
  };
  struct FreeReader {
    void operator()(redisReader* r) const { redisReaderFree(r); }
  };
  Status connect();
  Status connect_tcp();
  Status start_tls();
  Result<RedisValue> round_trip(const std::vector<std::string>& argv);
  Status send_all(const char* data, size_t len);
  Result<size_t> receive(char* data, size_t len);  // 0 = the server closed the connection
  void drop();
  std::string where() const;

  config::FleetConfig cfg_;
  UniqueFd fd_;
  std::shared_ptr<io::TlsContext> tls_ctx_;  // made at the first rediss:// connect
  std::unique_ptr<SSL, FreeSsl> ssl_;
  std::unique_ptr<redisReader, FreeReader> reader_;
};

}  // namespace helios::fleet
