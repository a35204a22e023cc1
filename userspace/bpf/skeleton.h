// RAII owner of a bpftool-generated skeleton, in the lifecycle steps the kernel imposes:
//   open() -> [rodata(), set_max_entries(), pin_maps_under()] -> load() -> [attach()]
// and destroyed (links detached, fds closed) on scope exit. Templated over the generated type
// (`struct xdp_guard` from helios/xdp_guard.skel.h and friends): bpftool emits C++ static
// members T::open/load/attach/destroy, so no per-skeleton glue is needed.
#pragma once

#include <bpf/libbpf.h>

#include <cerrno>
#include <string>
#include <utility>

#include "bpf/bpf_error.h"
#include "common/result.h"

namespace helios::bpf {

enum class SkeletonState { kEmpty, kOpened, kLoaded, kAttached };

const char* skeleton_state_name(SkeletonState s);

template <typename T>
class Skeleton {
 public:
  Skeleton() = default;
  Skeleton(const Skeleton&) = delete;
  Skeleton& operator=(const Skeleton&) = delete;
  Skeleton(Skeleton&& o) noexcept
      : skel_(std::exchange(o.skel_, nullptr)),
        state_(std::exchange(o.state_, SkeletonState::kEmpty)) {}
  Skeleton& operator=(Skeleton&& o) noexcept {
    if (this != &o) {
      reset();
      skel_ = std::exchange(o.skel_, nullptr);
      state_ = std::exchange(o.state_, SkeletonState::kEmpty);
    }
    return *this;
  }
  ~Skeleton() { reset(); }

  // Step 1: parse the embedded object. Nothing is created in the kernel yet.
  static Result<Skeleton> open() {
    errno = 0;
    T* s = T::open();
    if (!s) return libbpf_error(-errno, "bpf: opening skeleton");
    Skeleton out;
    out.skel_ = s;
    out.state_ = SkeletonState::kOpened;
    return out;
  }

  // Step 2 (before load): read-only data (`const volatile` globals).
  auto* rodata() { return state_ == SkeletonState::kOpened ? skel_->rodata : nullptr; }

  // Step 2 (before load): map capacity.
  Status set_max_entries(bpf_map* map, uint32_t n) {
    if (state_ != SkeletonState::kOpened) return Error::invalid("bpf: max_entries after load");
    int err = bpf_map__set_max_entries(map, n);
    if (err) return libbpf_error(err, std::string("bpf: max_entries of ") + bpf_map__name(map));
    return {};
  }

  // Step 2 (before load): pin every map (except internal .rodata/.bss) as dir/<map name>.
  // libbpf reuses a compatible map already pinned there, so a second load shares state.
  Status pin_maps_under(const std::string& dir) {
    if (state_ != SkeletonState::kOpened) return Error::invalid("bpf: pin paths after load");
    bpf_map* m;
    bpf_object__for_each_map(m, skel_->obj) {
      if (bpf_map__is_internal(m)) continue;
      std::string path = dir + "/" + bpf_map__name(m);
      int err = bpf_map__set_pin_path(m, path.c_str());
      if (err) return libbpf_error(err, "bpf: pin path " + path);
    }
    return {};
  }

  // Step 2 (before load): pin one map at `path`.
  Status pin_map(bpf_map* map, const std::string& path) {
    if (state_ != SkeletonState::kOpened) return Error::invalid("bpf: pin path after load");
    int err = bpf_map__set_pin_path(map, path.c_str());
    if (err) return libbpf_error(err, "bpf: pin path " + path);
    return {};
  }

  // Step 3: create maps, run the verifier.
  Status load() { return transition(SkeletonState::kLoaded); }
  // Step 4: auto-attach every program that declares its attach point in SEC().
  Status attach() { return transition(SkeletonState::kAttached); }

  // Marks the object as loaded by someone else (libxdp loads the object it attaches).
  void mark_loaded_externally() {
    if (state_ == SkeletonState::kOpened) state_ = SkeletonState::kLoaded;
  }

  T* get() const { return skel_; }
  T* operator->() const { return skel_; }
  bpf_object* object() const { return skel_ ? skel_->obj : nullptr; }
  SkeletonState state() const { return state_; }

  void reset() {
    if (skel_) T::destroy(skel_);
    skel_ = nullptr;
    state_ = SkeletonState::kEmpty;
  }

 private:
  // The one transition function: only forward steps are legal.
  Status transition(SkeletonState to) {
    switch (to) {
      case SkeletonState::kLoaded: {
        if (state_ != SkeletonState::kOpened)
          return Error::invalid(std::string("bpf: load from state ") + skeleton_state_name(state_));
        int err = T::load(skel_);
        if (err) return libbpf_error(err, "bpf: loading programs (verifier or map creation)");
        state_ = to;
        return {};
      }
      case SkeletonState::kAttached: {
        if (state_ != SkeletonState::kLoaded)
          return Error::invalid(std::string("bpf: attach from state ") +
                                skeleton_state_name(state_));
        int err = T::attach(skel_);
        if (err) return libbpf_error(err, "bpf: attaching programs");
        state_ = to;
        return {};
      }
      case SkeletonState::kEmpty:
      case SkeletonState::kOpened:
        break;
    }
    return Error::invalid("bpf: illegal skeleton transition");
  }

  T* skel_ = nullptr;
  SkeletonState state_ = SkeletonState::kEmpty;
};

}  // namespace helios::bpf
