// TLS without kernel help (this kernel has no kTLS): OpenSSL over memory BIOs, so the worker's
// io_uring receives and sends ciphertext and the relay sees plaintext. Used for clients that
// send SSLRequest when [tls] client_tls_mode allows it, and for backends under [backend]
// sslmode. Leases of TLS connections always take the user-space data path.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "io/send_queue.h"

namespace helios::io {

// An SSL_CTX (RAII). Server side: certificate + key (+ CA for client certs). Client side:
// verification settings for PostgreSQL's sslmode.
class TlsContext {
 public:
  static Result<std::shared_ptr<TlsContext>> server(const std::string& cert_file,
                                                    const std::string& key_file,
                                                    const std::string& ca_file);
  enum class Verify { kNone, kChainAndHost };
  static Result<std::shared_ptr<TlsContext>> client(Verify verify, const std::string& root_cert);
  ~TlsContext();
  SSL_CTX* get() const { return ctx_; }

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

// One TLS session over memory BIOs.
class TlsConn {
 public:
  // Server side (a client connected to the proxy) or client side (the proxy to PostgreSQL).
  static Result<std::unique_ptr<TlsConn>> accept(std::shared_ptr<TlsContext> ctx);
  static Result<std::unique_ptr<TlsConn>> connect(std::shared_ptr<TlsContext> ctx,
                                                  const std::string& host_for_verify);
  // Adopts an SSL session whose handshake ran elsewhere (on a blocking socket): its BIOs are
  // replaced by memory BIOs.
  static std::unique_ptr<TlsConn> adopt(SSL* ssl, std::shared_ptr<TlsContext> ctx);
  ~TlsConn();
  TlsConn(const TlsConn&) = delete;
  TlsConn& operator=(const TlsConn&) = delete;

  // Ciphertext from the peer in; plaintext (possibly none yet) appended to `plain`. Handshake
  // records to send back are collected in `out` (ciphertext send queue).
  Status feed(const uint8_t* data, size_t len, std::string& plain, ChunkPool& pool);
  // Plaintext to send: encrypted into `out`.
  Status write(std::string_view plain, ChunkPool& pool);
  bool established() const { return SSL_is_init_finished(ssl_); }
  SendQueue& out() { return out_; }
  SSL* ssl() const { return ssl_; }
  // Protocol and cipher, for logs.
  std::string describe() const;

 private:
  TlsConn(SSL* ssl, std::shared_ptr<TlsContext> ctx);
  void collect(ChunkPool& pool);  // moves what OpenSSL wrote to wbio into out_
  Status check(int rc, const char* what);

  std::shared_ptr<TlsContext> ctx_;
  SSL* ssl_;
  BIO* rbio_;  // owned by ssl_
  BIO* wbio_;  // owned by ssl_
  SendQueue out_;
};

// The last OpenSSL error as text.
std::string tls_error_string();

}  // namespace helios::io
