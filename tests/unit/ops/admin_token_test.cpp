// The admin API's generated token file.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "ops/admin_token.h"

using namespace helios;
using namespace helios::config;
using namespace helios::ops;

namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/helios-token-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  return tmpl;
}

}  // namespace

TEST_CASE("the generated admin token: created 0600, reused, narrowed, and found by path") {
  std::string dir = temp_dir();
  std::string path = dir + "/admin_token";
  auto t1 = ensure_token_file(path);
  REQUIRE(t1.ok());
  CHECK(t1->size() == 64);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto t2 = ensure_token_file(path);
  REQUIRE(t2.ok());
  CHECK(*t2 == *t1);
  CHECK(*read_token_file(path) == *t1);
  ::chmod(path.c_str(), 0644);
  REQUIRE(ensure_token_file(path).ok());
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK_FALSE(read_token_file(dir + "/nope").ok());
  CHECK_FALSE(ensure_token_file(dir + "/no/such/dir/admin_token").ok());

  GetEnv none = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  CHECK(generated_token_path("/etc/helios/proxy.toml", none) == "/etc/helios/admin_token");
  CHECK(generated_token_path("proxy.toml", none) == "admin_token");
  GetEnv set = [](std::string_view n) -> std::optional<std::string> {
    if (n == kAdminTokenFileEnv) return std::string("/run/x/token");
    return std::nullopt;
  };
  CHECK(generated_token_path("/etc/helios/proxy.toml", set) == "/run/x/token");
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}
