#include "pg/credential.h"

#include "pg/md5.h"

namespace helios::pg {

Result<Credential> credential_from_stored(std::string_view stored) {
  if (stored.empty()) return Error::invalid("empty password");
  if (looks_like_scram_secret(stored)) {
    auto secret = parse_scram_secret(stored);
    if (!secret) return secret.error();
    return Credential{ScramCredential{std::move(*secret)}};
  }
  if (is_md5_hash(stored)) return Credential{Md5Credential{std::string(stored)}};
  return Credential{PlainCredential{std::string(stored)}};
}

std::string_view credential_kind(const Credential& c) {
  struct Visitor {
    std::string_view operator()(const PlainCredential&) const { return "plain"; }
    std::string_view operator()(const Md5Credential&) const { return "md5"; }
    std::string_view operator()(const ScramCredential&) const { return "scram-sha-256"; }
  };
  return std::visit(Visitor{}, c);
}

}  // namespace helios::pg
