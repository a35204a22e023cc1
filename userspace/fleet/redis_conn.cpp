#include "fleet/redis_conn.h"

#include <cerrno>

namespace helios::fleet {
namespace {

timeval to_timeval(Nanos d) {
  return timeval{time_t(d / kNanosPerSec), suseconds_t((d % kNanosPerSec) / 1000)};
}

RedisValue convert(const redisReply* r) {
  RedisValue v;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      v.kind = RedisValue::Kind::kInt;
      v.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      v.kind = RedisValue::Kind::kString;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      v.kind = RedisValue::Kind::kArray;
      for (size_t i = 0; i < r->elements; ++i) v.array.push_back(convert(r->element[i]));
      break;
    default:
      break;
  }
  return v;
}

}  // namespace

Status RedisConn::connect() {
  timeval tv = to_timeval(cfg_.redis_timeout);
  std::unique_ptr<redisContext, Free> c(
      redisConnectWithTimeout(cfg_.redis_host.c_str(), cfg_.redis_port, tv));
  if (!c) return Error{ENOMEM, "redis: cannot allocate a connection"};
  if (c->err)
    return Error{ECONNREFUSED, "redis " + cfg_.redis_host + ":" + std::to_string(cfg_.redis_port) +
                                   ": " + c->errstr};
  redisSetTimeout(c.get(), tv);
  ctx_ = std::move(c);
  if (!cfg_.redis_password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!cfg_.redis_user.empty()) auth.push_back(cfg_.redis_user);
    auth.push_back(cfg_.redis_password);
    if (auto r = command(auth); !r) return r.error();
  }
  if (cfg_.redis_db != 0)
    if (auto r = command({"SELECT", std::to_string(cfg_.redis_db)}); !r) return r.error();
  return {};
}

Result<RedisValue> RedisConn::command(const std::vector<std::string>& argv) {
  if (!ctx_)
    if (auto s = connect(); !s) {
      ctx_.reset();
      return s.error();
    }
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* reply = static_cast<redisReply*>(
      redisCommandArgv(ctx_.get(), int(args.size()), args.data(), lens.data()));
  if (!reply) {
    std::string why = ctx_->errstr;
    ctx_.reset();
    return Error{EIO, "redis: " + why};
  }
  std::unique_ptr<redisReply, void (*)(void*)> owned(reply, freeReplyObject);
  if (reply->type == REDIS_REPLY_ERROR)
    return Error{EPROTO, "redis: " + std::string(reply->str, reply->len)};
  return convert(reply);
}

}  // namespace helios::fleet
