#include "io/tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

namespace helios::io {

std::string tls_error_string() {
  unsigned long e = ERR_get_error();
  if (!e) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

Result<std::shared_ptr<TlsContext>> TlsContext::server(const std::string& cert_file,
                                                       const std::string& key_file,
                                                       const std::string& ca_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return Error{EPROTO, "SSL_CTX_new: " + tls_error_string()};
  std::shared_ptr<TlsContext> holder(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1)
    return Error{EINVAL, "TLS certificate " + cert_file + ": " + tls_error_string()};
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return Error{EINVAL, "TLS key " + key_file + ": " + tls_error_string()};
  if (SSL_CTX_check_private_key(ctx) != 1)
    return Error{EINVAL, "TLS key " + key_file + " does not match " + cert_file};
  if (!ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1)
      return Error{EINVAL, "TLS CA " + ca_file + ": " + tls_error_string()};
    // Client certificates are checked when offered (like PostgreSQL with ssl_ca_file set).
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  return holder;
}

Result<std::shared_ptr<TlsContext>> TlsContext::client(Verify verify,
                                                       const std::string& root_cert) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return Error{EPROTO, "SSL_CTX_new: " + tls_error_string()};
  std::shared_ptr<TlsContext> holder(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (verify == Verify::kChainAndHost) {
    if (root_cert.empty()) {
      if (SSL_CTX_set_default_verify_paths(ctx) != 1)
        return Error{EINVAL, "TLS: no root certificates: " + tls_error_string()};
    } else if (SSL_CTX_load_verify_locations(ctx, root_cert.c_str(), nullptr) != 1) {
      return Error{EINVAL, "TLS root certificate " + root_cert + ": " + tls_error_string()};
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  return holder;
}

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
}

TlsConn::TlsConn(SSL* ssl, std::shared_ptr<TlsContext> ctx)
    : ctx_(std::move(ctx)), ssl_(ssl), rbio_(BIO_new(BIO_s_mem())), wbio_(BIO_new(BIO_s_mem())) {
  BIO_set_mem_eof_return(rbio_, -1);  // "no data yet", not EOF
  SSL_set_bio(ssl_, rbio_, wbio_);
}

TlsConn::~TlsConn() {
  SSL_free(ssl_);
}

Result<std::unique_ptr<TlsConn>> TlsConn::accept(std::shared_ptr<TlsContext> ctx) {
  SSL* ssl = SSL_new(ctx->get());
  if (!ssl) return Error{EPROTO, "SSL_new: " + tls_error_string()};
  std::unique_ptr<TlsConn> c(new TlsConn(ssl, std::move(ctx)));
  SSL_set_accept_state(ssl);
  return c;
}

Result<std::unique_ptr<TlsConn>> TlsConn::connect(std::shared_ptr<TlsContext> ctx,
                                                  const std::string& host) {
  SSL* ssl = SSL_new(ctx->get());
  if (!ssl) return Error{EPROTO, "SSL_new: " + tls_error_string()};
  std::unique_ptr<TlsConn> c(new TlsConn(ssl, std::move(ctx)));
  SSL_set_connect_state(ssl);
  if (!host.empty()) {
    SSL_set_tlsext_host_name(ssl, host.c_str());
    SSL_set1_host(ssl, host.c_str());
  }
  return c;
}

std::unique_ptr<TlsConn> TlsConn::adopt(SSL* ssl, std::shared_ptr<TlsContext> ctx) {
  return std::unique_ptr<TlsConn>(new TlsConn(ssl, std::move(ctx)));
}

Status TlsConn::check(int rc, const char* what) {
  int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return {};
  if (err == SSL_ERROR_ZERO_RETURN) return Error{ECONNRESET, "TLS peer closed the session"};
  return Error{EPROTO, std::string(what) + ": " + tls_error_string()};
}

void TlsConn::collect(ChunkPool& pool) {
  char* data;
  long n = BIO_get_mem_data(wbio_, &data);
  if (n > 0) {
    out_.push_owned(pool, std::string_view(data, size_t(n)));
    (void)BIO_reset(wbio_);
  }
}

Status TlsConn::feed(const uint8_t* data, size_t len, std::string& plain, ChunkPool& pool) {
  if (len && BIO_write(rbio_, data, int(len)) != int(len))
    return Error{ENOMEM, "TLS: buffering ciphertext failed"};
  if (!SSL_is_init_finished(ssl_)) {
    int rc = SSL_do_handshake(ssl_);
    collect(pool);
    if (rc != 1) return check(rc, "TLS handshake");
  }
  char buf[16384];
  for (;;) {
    int n = SSL_read(ssl_, buf, sizeof buf);
    if (n > 0) {
      plain.append(buf, size_t(n));
      continue;
    }
    collect(pool);
    return check(n, "TLS read");
  }
}

Status TlsConn::write(std::string_view plain, ChunkPool& pool) {
  while (!plain.empty()) {
    int n = SSL_write(ssl_, plain.data(), int(std::min<size_t>(plain.size(), 1 << 20)));
    if (n <= 0) {
      collect(pool);
      return check(n, "TLS write");
    }
    plain.remove_prefix(size_t(n));
  }
  collect(pool);
  return {};
}

std::string TlsConn::describe() const {
  return std::string(SSL_get_version(ssl_)) + " " + SSL_get_cipher_name(ssl_);
}

}  // namespace helios::io
