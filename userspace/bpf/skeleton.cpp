#include "bpf/skeleton.h"

namespace helios::bpf {

const char* skeleton_state_name(SkeletonState s) {
  switch (s) {
    case SkeletonState::kEmpty:
      return "empty";
    case SkeletonState::kOpened:
      return "opened";
    case SkeletonState::kLoaded:
      return "loaded";
    case SkeletonState::kAttached:
      return "attached";
  }
  return "?";
}

}  // namespace helios::bpf
