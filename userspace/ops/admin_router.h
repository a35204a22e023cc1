// The admin API's request handling without sockets: a parsed request (method, path, query
// parameters, Authorization header) in, a response out. AdminApi (admin_api.h) feeds it every
// request cpp-httplib has parsed; fuzz/admin_fuzz.cpp and the unit tests call it directly.
// The endpoints and the token rules are documented in admin_api.h.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ops/metrics_snapshot.h"

namespace helios::ops {

// What the API operates on (the running proxy; a fake in tests).
class AdminTarget {
 public:
  virtual ~AdminTarget() = default;
  virtual ProxySnapshot snapshot() = 0;
  virtual bool ready() = 0;  // serving clients (false before start and while draining)
  virtual bool draining() = 0;
  virtual uint64_t quota_rejections_1h(const ProxySnapshot& s) = 0;
  virtual ReloadSample reload() = 0;
  virtual void drain() = 0;
  virtual std::string admin_token() = 0;  // configured token; "" = reads need no token
  // Token of the mutating endpoints: admin_token() if set, else the generated one. "" = the
  // mutating endpoints are refused (403).
  virtual std::string mutation_token() = 0;
};

// /api/v1/tenants/stats without ?limit=.
inline constexpr size_t kDefaultAdminTenantLimit = 1000;

struct AdminRequest {
  std::string method;                              // "GET", "HEAD", "POST", ...
  std::string path;                                // without the query string
  std::multimap<std::string, std::string> params;  // decoded query parameters
  std::string authorization;                       // the Authorization header's value
};

struct AdminResponse {
  int status = 200;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type
};

// Answers one request. Never throws for any request; only the target's own failures propagate.
AdminResponse handle_admin_request(AdminTarget& target, const AdminRequest& req);

// True if `authorization` (the header's value) is "Bearer <token>" (constant-time compare).
bool bearer_matches(const std::string& authorization, const std::string& token);

}  // namespace helios::ops
