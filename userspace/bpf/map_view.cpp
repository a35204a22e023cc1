#include "bpf/map_view.h"

namespace helios::bpf {

Result<MapInfo> map_info(int fd) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  int err = bpf_obj_get_info_by_fd(fd, &info, &len);
  if (err) return libbpf_error(err, "bpf: map info");
  MapInfo out;
  out.type = info.type;
  out.key_size = info.key_size;
  out.value_size = info.value_size;
  out.max_entries = info.max_entries;
  out.name = info.name;
  return out;
}

int possible_cpus() {
  int n = libbpf_num_possible_cpus();
  return n > 0 ? n : 1;
}

Result<UniqueFd> open_pinned_map(const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return Error::from_errno("bpf: opening pinned map " + path);
  return UniqueFd(fd);
}

}  // namespace helios::bpf
