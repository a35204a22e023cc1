// The RAII skeleton wrapper enforces the kernel's lifecycle order: rodata and max_entries only
// before load, load once, attach only after load; destruction releases everything.
#include <doctest/doctest.h>

#include "bpf/map_view.h"
#include "bpf/skeleton.h"
#include "guard_fixture.h"
#include "helios/vip_lookup.skel.h"
#include "helios/xdp_guard.skel.h"

using namespace helios::bpf;

TEST_CASE("open -> configure -> load, in that order only" *
          doctest::skip(test::skip_guard_tests())) {
  auto s = Skeleton<xdp_guard>::open();
  REQUIRE(s.ok());
  CHECK(s->state() == SkeletonState::kOpened);
  CHECK(s->set_max_entries((*s)->maps.tenant_cidrs, 128).ok());
  CHECK(s->attach().error().message.find("attach from state opened") != std::string::npos);
  REQUIRE(s->load().ok());
  CHECK(s->state() == SkeletonState::kLoaded);
  CHECK(!s->load().ok());
  CHECK(!s->set_max_entries((*s)->maps.tenant_cidrs, 64).ok());
  auto info = map_info(bpf_map__fd((*s)->maps.tenant_cidrs));
  REQUIRE(info.ok());
  CHECK(info->max_entries == 128);
  CHECK(info->name == "tenant_cidrs");

  // Typed views refuse a map whose sizes are not the C++ type's.
  CHECK(!MapView<uint32_t, edge_tenant_rule>::of((*s)->maps.guard_config).ok());
  CHECK(MapView<uint32_t, edge_guard_config>::of((*s)->maps.guard_config).ok());
  CHECK(!MapView<uint64_t, edge_guard_config>::of_fd(bpf_map__fd((*s)->maps.guard_config)).ok());

  Skeleton<xdp_guard> moved = std::move(*s);
  CHECK(s->get() == nullptr);
  CHECK(moved.state() == SkeletonState::kLoaded);
}

TEST_CASE("rodata is writable before load only") {
  auto s = Skeleton<vip_lookup>::open();
  REQUIRE(s.ok());
  REQUIRE(s->rodata() != nullptr);
  s->rodata()->vip_cfg.vip_port = 5432;
  if (!test::skip_guard_tests()) {
    REQUIRE(s->load().ok());
    CHECK(s->rodata() == nullptr);
  }
}
