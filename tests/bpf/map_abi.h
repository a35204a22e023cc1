// Checks a loaded skeleton's maps against the names and sizes the ABI header promises
// (include/helios/bpf_abi.h): one table per program, one loop here.
#pragma once

#include <bpf/libbpf.h>
#include <doctest/doctest.h>

#include <cstddef>
#include <initializer_list>
#include <string>

namespace helios::bpf::testing {

struct MapAbi {
  bpf_map* map;
  const char* name;
  size_t key, value;
};

inline void check_map_abi(std::initializer_list<MapAbi> wants) {
  for (const auto& w : wants) {
    CAPTURE(w.name);
    REQUIRE(w.map != nullptr);
    CHECK(std::string(bpf_map__name(w.map)) == w.name);
    CHECK(bpf_map__key_size(w.map) == w.key);
    CHECK(bpf_map__value_size(w.map) == w.value);
  }
}

}  // namespace helios::bpf::testing
