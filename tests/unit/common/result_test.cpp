#include <doctest/doctest.h>

#include "common/result.h"
#include "common/unique_fd.h"

#include <fcntl.h>

using namespace helios;

TEST_CASE("Result carries a value or an error") {
  Result<int> ok = 42;
  CHECK(ok.ok());
  CHECK(*ok == 42);
  Result<int> bad = Error::invalid("nope");
  CHECK_FALSE(bad.ok());
  CHECK(bad.error().code == EINVAL);
  CHECK(bad.error().message == "nope");
}

TEST_CASE("UniqueFd closes on destruction and moves ownership") {
  int raw;
  {
    UniqueFd a(::open("/dev/null", O_RDONLY));
    REQUIRE(a.valid());
    raw = a.get();
    UniqueFd b = std::move(a);
    CHECK_FALSE(a.valid());
    CHECK(b.get() == raw);
  }
  CHECK(::fcntl(raw, F_GETFD) == -1);
}
