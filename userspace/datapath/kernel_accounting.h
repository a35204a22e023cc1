// Exact accounting on the kernel path. The verdict counts per tenant, per CPU, what it forwarded
// (splice_tenants); KernelTenantCounters turns those into deltas the metrics layer adds to the
// same per-tenant totals as the user-space path (queries_total, transactions_total, bytes).
// One reader (the control thread), polled at the metrics period.
//
// QPS quotas: a spliced lease's statements take tokens from splice_qps[tenant], which the
// control plane fills out of the tenant's own bucket (top_up_qps), so user-space and kernel
// statements share one budget; when the kernel's tokens run out the verdict hands the lease
// back and the worker applies its usual QPS wait.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "bpf/sockmap_splice.h"
#include "common/result.h"

namespace helios::datapath {

struct TenantDelta {
  uint32_t tenant = 0;
  uint64_t queries = 0;
  uint64_t transactions = 0;
  uint64_t bytes_to_backend = 0;
  uint64_t bytes_to_client = 0;
  uint64_t leases_ended = 0;
  uint64_t handbacks = 0;
  uint64_t qps_refused = 0;
  bool empty() const {
    return !queries && !transactions && !bytes_to_backend && !bytes_to_client && !leases_ended &&
           !handbacks && !qps_refused;
  }
};

class KernelTenantCounters {
 public:
  explicit KernelTenantCounters(bpf::SpliceEngine& engine) : engine_(&engine) {}
  // What changed for these tenants since the previous poll (non-empty deltas only).
  Result<std::vector<TenantDelta>> poll(const std::vector<uint32_t>& tenants);

 private:
  bpf::SpliceEngine* engine_;
  std::array<splice_tenant_counters, HELIOS_SOCK_MAX_TENANTS> last_{};
};

// Moves tokens from the tenant's user-space bucket (take_one() takes one, false when empty)
// into the kernel's until it holds `target`. Returns how many were moved. Tokens the kernel
// holds count against the tenant's rate like any other: the kernel never mints its own.
int64_t top_up_qps(bpf::SpliceEngine& engine, uint32_t tenant, int64_t target,
                   const std::function<bool()>& take_one);

}  // namespace helios::datapath
