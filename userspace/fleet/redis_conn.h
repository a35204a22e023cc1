// One blocking hiredis connection, used only by the fleet agent's own thread (never a worker).
// Connects lazily, with the configured timeout for connect and every command; any error drops
// the connection so the next call reconnects.
#pragma once

#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/config.h"

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
  // Runs one command (argv form, binary-safe). Error: unreachable, timeout, or an error reply.
  Result<RedisValue> command(const std::vector<std::string>& argv);
  bool connected() const { return ctx_ != nullptr; }

 private:
  struct Free {
    void operator()(redisContext* c) const { redisFree(c); }
  };
  Status connect();

  config::FleetConfig cfg_;
  std::unique_ptr<redisContext, Free> ctx_;
};

}  // namespace helios::fleet
