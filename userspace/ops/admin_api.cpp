#include "ops/admin_api.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "common/log.h"

namespace helios::ops {
namespace {

void send(httplib::Response& res, const AdminResponse& r) {
  res.status = r.status;
  for (const auto& [name, value] : r.headers) res.set_header(name.c_str(), value);
  res.set_content(r.body, r.content_type.c_str());
}

void send_json_error(httplib::Response& res, int status, const std::string& message) {
  nlohmann::json body{{"error", message}};
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                  "application/json");
}

}  // namespace

AdminApi::AdminApi(AdminTarget& target) : target_(target) {
  routes();
}

AdminApi::~AdminApi() {
  stop();
}

void AdminApi::routes() {
  httplib::Server& http = endpoint_.http();
  // Every request httplib could parse is answered here; its own router is not used.
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    AdminRequest r{req.method, req.path, req.params, req.get_header_value("Authorization")};
    send(res, handle_admin_request(target_, r));
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        log::error("admin API {} {}: {}", req.method, req.path, what);
        send_json_error(res, 500, what);
      });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty())
      send_json_error(res, 404, "no such endpoint: " + req.method + " " + req.path);
  });
}

}  // namespace helios::ops
