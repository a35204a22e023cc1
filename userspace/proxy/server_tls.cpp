#include "proxy/server_tls.h"

namespace helios::proxy {

Result<pool::ServerTls> server_tls_from(const config::Config& cfg) {
  using M = pool::ServerTls::Mode;
  pool::ServerTls t;
  switch (cfg.backend.sslmode) {
    case config::SslMode::kDisable:
      return t;
    case config::SslMode::kPrefer:
      t.mode = M::kPrefer;
      break;
    case config::SslMode::kRequire:
      t.mode = M::kRequire;
      break;
    case config::SslMode::kVerifyFull:
      t.mode = M::kVerifyFull;
      break;
  }
  auto verify = t.mode == M::kVerifyFull ? io::TlsContext::Verify::kChainAndHost
                                         : io::TlsContext::Verify::kNone;
  auto ctx = io::TlsContext::client(verify, cfg.backend.sslrootcert);
  if (!ctx) return ctx.error();
  t.ctx = std::move(*ctx);
  return t;
}

}  // namespace helios::proxy
