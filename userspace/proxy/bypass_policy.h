// [proxy] same_host_bypass = "auto": is attaching the same-host bypass safe here? A pure decision
// over facts gathered once at start-up (docs/datapath.md, "When `auto` attaches it").
//
// "Safe" means: every connection it takes behaves as over TCP (same bytes, same order, and a
// sender held back when its receiver stops reading), and nobody loses something they configured.
// With "auto" it attaches only when
//   1. no lease can be spliced: data_path is "userspace" in [proxy] and every tenant rule (with
//      "kernel" or "auto" anywhere the splice engine is loaded, and a reload could splice; a
//      socket whose peer redirects into it with sk_msg never reaches a splice verdict);
//   2. PostgreSQL is reached over TCP (not a unix socket) and every address [backend] host and
//      hosts resolve to is on this host (loopback, or an address this host's network namespace
//      owns: bind() to it works), the deployment the measurements cover;
//   3. the kernel's redirect keeps TCP's flow control (bpf::kRedirectHasFlowControl). No kernel
//      we know of does: a receiver that stops reading does not stop its sender, so the proxy's
//      backpressure (a slow client pauses its backend; a flooding client is not read) would no
//      longer bound memory. So today "auto" says why and leaves the bypass off;
//   4. the kernel and this process support it (require_bypass over the probe).
// true attaches without asking (a refusal is logged and counted as before), false never does.
#pragma once

#include <string>
#include <vector>

#include "bpf/net_addr.h"
#include "config/config.h"

namespace helios::proxy {

struct DatabaseAddress {
  bpf::IpAddr addr;
  bool local = false;  // this network namespace owns it (bind() works); loopback always is
};

struct BypassFacts {
  config::BypassSetting setting = config::BypassSetting::kAuto;
  bool splicing_configured = false;    // data_path "kernel" or "auto" in [proxy] or a tenant rule
  std::string kernel_refusal;          // why the kernel or this process cannot; "" = it can
  bool redirect_flow_control = false;  // a full receiver holds the sender back, as over TCP
  bool database_unix_socket = false;
  std::string database_resolve_error;               // a [backend] host did not resolve
  std::vector<DatabaseAddress> database_addresses;  // every address the backend hosts resolve to
};

enum class BypassOutcome { kAttach, kSkip, kKernelRefused };

struct BypassDecision {
  BypassOutcome outcome = BypassOutcome::kSkip;
  std::string why;  // the condition that decided, for the start-up log line
};

// 127.0.0.0/8 (IPv4-mapped) or ::1, as bpf/lib/pg_sock.bpf.h's sock_is_loopback.
bool is_loopback(const bpf::IpAddr& a);

BypassDecision decide_bypass(const BypassFacts& f);

// The facts for `cfg` (under "auto" only): the kernel probe, the backend hosts' addresses.
BypassFacts gather_bypass_facts(const config::Config& cfg);

}  // namespace helios::proxy
