// check_serving: the last gate before a config is used (at start and at every reload). A file
// that parses may still leave the proxy unable to serve: an empty file (truncated by an editor
// or a failed copy) parses to all defaults, and a reload of it would point every new login at
// localhost:5432 with no credentials.
#include "config/config.h"

namespace helios::config {

Status check_serving(const Config& next, const Config* running) {
  const std::string& file = next.source;
  if (next.shape.empty)
    return Error::invalid(file +
                          ": the file has no settings (empty, or only comments): refused, the "
                          "proxy would run on built-in defaults alone (a truncated file?)");
  if (running == nullptr) return {};
  if (running->shape.backend && !next.shape.backend)
    return Error::invalid(file +
                          ": no [backend] section (the running config has one): refused, new "
                          "logins would go to the default backend localhost:5432");
  if (running->shape.listen_address && !next.shape.listen_address)
    return Error::invalid(file +
                          ": no [proxy] listen_address (the running config has one): refused");
  return {};
}

}  // namespace helios::config
