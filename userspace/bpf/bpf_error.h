// Errors of the BPF layer. A kernel that refuses something we need is reported as a
// "missing feature" (code EOPNOTSUPP, or EPERM for missing privileges) whose message names the
// feature, so callers can fall back cleanly (run without the guard, log one line, set a metric)
// and heliosctl can print what is missing.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>

#include "common/result.h"

namespace helios::bpf {

// Builds the error for a kernel feature that is absent or refused.
inline Error missing_feature(const std::string& feature, const std::string& detail) {
  return Error{EOPNOTSUPP, "missing kernel feature: " + feature + " (" + detail + ")"};
}

// Builds the error for missing privileges (CAP_BPF / CAP_NET_ADMIN / CAP_SYS_ADMIN).
inline Error missing_privilege(const std::string& what, const std::string& detail) {
  return Error{EPERM, "missing privilege: " + what + " (" + detail + ")"};
}

// True when the error means "this kernel or this process cannot do BPF feature X": the caller
// should fall back rather than treat it as a bug or a bad config.
inline bool is_missing_feature(const Error& e) {
  return e.code == EOPNOTSUPP || e.code == EPERM || e.code == ENOSYS;
}

// Error from a libbpf call that returned a negative errno (libbpf 1.x convention).
inline Error libbpf_error(int neg_errno, const std::string& context) {
  int e = neg_errno < 0 ? -neg_errno : neg_errno;
  if (e == 0) e = EIO;
  if (e == EPERM || e == EACCES) {
    // EACCES from the verifier is a rejected program, not a privilege problem.
    if (e == EPERM)
      return missing_privilege("CAP_BPF and CAP_NET_ADMIN", context + ": " + std::strerror(e));
  }
  return Error{e, context + ": " + std::strerror(e)};
}

}  // namespace helios::bpf
