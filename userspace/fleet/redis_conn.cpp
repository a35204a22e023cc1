#include "fleet/redis_conn.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

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

constexpr int kErrorReply = EREMOTEIO;  // Redis answered with an error ("-ERR ...")

bool is_ip_address(const std::string& host) {
  in6_addr a6;
  in_addr a4;
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

}  // namespace

std::string RedisConn::where() const {
  return std::string(cfg_.redis_tls ? "rediss " : "redis ") + cfg_.redis_host + ":" +
         std::to_string(cfg_.redis_port);
}

void RedisConn::drop() {
  ssl_.reset();
  reader_.reset();
  fd_.reset();
}

Status RedisConn::connect_tcp() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(cfg_.redis_port);
  if (int rc = getaddrinfo(cfg_.redis_host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return Error{EHOSTUNREACH, where() + ": " + gai_strerror(rc)};
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> owned(found, freeaddrinfo);
  const int timeout_ms = int(std::max<Nanos>(1, cfg_.redis_timeout / kNanosPerMilli));
  int last = ECONNREFUSED;
  for (addrinfo* ai = found; ai; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
      last = errno;
      continue;
    }
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last = errno;
        continue;
      }
      pollfd p{fd.get(), POLLOUT, 0};
      int n = ::poll(&p, 1, timeout_ms);
      int err = 0;
      socklen_t len = sizeof err;
      if (n <= 0) {
        last = n == 0 ? ETIMEDOUT : errno;
        continue;
      }
      if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        last = err ? err : errno;
        continue;
      }
    }
    // Blocking from here on, every read and write bounded by redis_timeout.
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
    timeval tv = to_timeval(cfg_.redis_timeout);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fd_ = std::move(fd);
    return {};
  }
  return Error{last, where() + ": " + std::strerror(last)};
}

Status RedisConn::start_tls() {
  if (!tls_ctx_) {
    auto ctx = io::TlsContext::client(cfg_.redis_tls_verify ? io::TlsContext::Verify::kChainAndHost
                                                            : io::TlsContext::Verify::kNone,
                                      cfg_.redis_tls_ca_file);
    if (!ctx) return Error{ctx.error().code, where() + ": " + ctx.error().message};
    tls_ctx_ = *ctx;
  }
  ssl_.reset(SSL_new(tls_ctx_->get()));
  if (!ssl_) return Error{EPROTO, where() + ": SSL_new: " + io::tls_error_string()};
  SSL_set_fd(ssl_.get(), fd_.get());
  const std::string& host = cfg_.redis_host;
  if (!is_ip_address(host)) SSL_set_tlsext_host_name(ssl_.get(), host.c_str());
  if (cfg_.redis_tls_verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
    int ok = is_ip_address(host) ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                                 : X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
    if (ok != 1) return Error{EINVAL, where() + ": cannot verify the host name " + host};
  }
  ERR_clear_error();
  if (SSL_connect(ssl_.get()) != 1) {
    long verify = SSL_get_verify_result(ssl_.get());
    std::string why =
        verify != X509_V_OK ? X509_verify_cert_error_string(verify) : io::tls_error_string();
    if (why.empty()) why = errno ? std::strerror(errno) : "handshake failed";
    return Error{EPROTO, where() + ": TLS handshake: " + why};
  }
  return {};
}

Status RedisConn::connect() {
  if (auto s = connect_tcp(); !s) return s;
  if (cfg_.redis_tls)
    if (auto s = start_tls(); !s) return s;
  reader_.reset(redisReaderCreate());
  if (!reader_) return Error{ENOMEM, where() + ": cannot allocate a reply reader"};
  if (!cfg_.redis_password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!cfg_.redis_user.empty()) auth.push_back(cfg_.redis_user);
    auth.push_back(cfg_.redis_password);
    if (auto r = round_trip(auth); !r) return r.error();
  }
  if (cfg_.redis_db != 0)
    if (auto r = round_trip({"SELECT", std::to_string(cfg_.redis_db)}); !r) return r.error();
  return {};
}

Status RedisConn::send_all(const char* data, size_t len) {
  while (len > 0) {
    ssize_t n;
    if (ssl_) {
      ERR_clear_error();
      n = SSL_write(ssl_.get(), data, int(len));
      if (n <= 0)
        return Error{EIO,
                     where() + ": TLS write: " +
                         (errno == EAGAIN ? std::string("timed out") : io::tls_error_string())};
    } else {
      n = ::send(fd_.get(), data, len, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error{
            errno,
            where() + ": " + (errno == EAGAIN ? "timed out" : std::string(std::strerror(errno)))};
      }
    }
    data += n;
    len -= size_t(n);
  }
  return {};
}

Result<size_t> RedisConn::receive(char* data, size_t len) {
  for (;;) {
    if (ssl_) {
      ERR_clear_error();
      int n = SSL_read(ssl_.get(), data, int(len));
      if (n > 0) return size_t(n);
      int err = SSL_get_error(ssl_.get(), n);
      if (err == SSL_ERROR_ZERO_RETURN) return size_t(0);
      return Error{EIO, where() + ": TLS read: " +
                            (errno == EAGAIN ? std::string("timed out") : io::tls_error_string())};
    }
    ssize_t n = ::recv(fd_.get(), data, len, 0);
    if (n >= 0) return size_t(n);
    if (errno == EINTR) continue;
    return Error{errno, where() + ": " +
                            (errno == EAGAIN ? "timed out" : std::string(std::strerror(errno)))};
  }
}

Result<RedisValue> RedisConn::round_trip(const std::vector<std::string>& argv) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  int len = redisFormatCommandArgv(&cmd, int(args.size()), args.data(), lens.data());
  if (len < 0) return Error{ENOMEM, where() + ": cannot format the command"};
  std::unique_ptr<char, void (*)(char*)> owned_cmd(cmd, redisFreeCommand);
  if (auto s = send_all(cmd, size_t(len)); !s) return s.error();
  void* reply = nullptr;
  char buf[16384];
  for (;;) {
    if (redisReaderGetReply(reader_.get(), &reply) != REDIS_OK)
      return Error{EBADMSG, where() + ": bad reply: " + reader_->errstr};
    if (reply) break;
    auto n = receive(buf, sizeof buf);
    if (!n) return n.error();
    if (*n == 0) return Error{ECONNRESET, where() + ": the server closed the connection"};
    if (redisReaderFeed(reader_.get(), buf, *n) != REDIS_OK)
      return Error{EBADMSG, where() + ": bad reply: " + reader_->errstr};
  }
  std::unique_ptr<redisReply, void (*)(void*)> owned(static_cast<redisReply*>(reply),
                                                     freeReplyObject);
  if (owned->type == REDIS_REPLY_ERROR)  // the one error that leaves the connection usable
    return Error{kErrorReply, "redis: " + std::string(owned->str, owned->len)};
  return convert(owned.get());
}

Result<RedisValue> RedisConn::command(const std::vector<std::string>& argv) {
  if (!fd_)
    if (auto s = connect(); !s) {
      drop();
      return s.error();
    }
  auto r = round_trip(argv);
  // An error reply leaves the connection usable; anything else (I/O, TLS, a broken reply,
  // a timeout with the reply maybe still coming) does not.
  if (!r && r.error().code != kErrorReply) drop();
  return r;
}

}  // namespace helios::fleet
