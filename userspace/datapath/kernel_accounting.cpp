#include "datapath/kernel_accounting.h"

namespace helios::datapath {

Result<std::vector<TenantDelta>> KernelTenantCounters::poll(const std::vector<uint32_t>& tenants) {
  std::vector<TenantDelta> out;
  for (uint32_t t : tenants) {
    if (t >= HELIOS_SOCK_MAX_TENANTS) continue;
    auto now = engine_->tenant_counters(t);
    if (!now) return now.error();
    splice_tenant_counters& was = last_[t];
    TenantDelta d;
    d.tenant = t;
    // Counters only grow, except when a slot is zeroed for another tenant: then start over.
    auto diff = [](uint64_t n, uint64_t w) { return n >= w ? n - w : n; };
    d.queries = diff(now->queries, was.queries);
    d.transactions = diff(now->transactions, was.transactions);
    d.bytes_to_backend = diff(now->bytes_to_backend, was.bytes_to_backend);
    d.bytes_to_client = diff(now->bytes_to_client, was.bytes_to_client);
    d.leases_ended = diff(now->leases_ended, was.leases_ended);
    d.handbacks = diff(now->handbacks, was.handbacks);
    d.qps_refused = diff(now->qps_refused, was.qps_refused);
    was = *now;
    if (!d.empty()) out.push_back(d);
  }
  return out;
}

int64_t top_up_qps(bpf::SpliceEngine& engine, uint32_t tenant, int64_t target,
                   const std::function<bool()>& take_one) {
  int64_t have = engine.qps_tokens(tenant);
  int64_t moved = 0;
  while (have + moved < target && take_one()) ++moved;
  if (moved) engine.add_qps_tokens(tenant, moved);
  return moved;
}

}  // namespace helios::datapath
