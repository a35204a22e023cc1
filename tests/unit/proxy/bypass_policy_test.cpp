// same_host_bypass = "auto": the pure decision over start-up facts (proxy/bypass_policy.h).
#include <doctest/doctest.h>

#include "bpf/sockops_bypass.h"
#include "proxy/bypass_policy.h"

using namespace helios;
using namespace helios::proxy;

namespace {

bpf::IpAddr ip(const char* s) {
  auto a = bpf::parse_ip(s);
  REQUIRE(a.ok());
  return *a;
}

DatabaseAddress on_host(const char* s) {
  return {ip(s), true};
}
DatabaseAddress elsewhere(const char* s) {
  return {ip(s), false};
}

// PostgreSQL on loopback, a kernel that supports the bypass with flow control (no kernel we know
// of has it: bpf::kRedirectHasFlowControl), user-space data path.
BypassFacts safe() {
  BypassFacts f;
  f.database_addresses = {on_host("127.0.0.1"), on_host("::1")};
  f.redirect_flow_control = true;
  return f;
}

}  // namespace

TEST_CASE("auto attaches when PostgreSQL is local, the kernel supports it and nothing splices") {
  BypassDecision d = decide_bypass(safe());
  CHECK(d.outcome == BypassOutcome::kAttach);
  CHECK(d.why == "PostgreSQL is on this host (127.0.0.1, ::1)");
  BypassFacts f = safe();
  f.database_addresses = {on_host("10.0.0.5")};  // one of this host's own addresses
  CHECK(decide_bypass(f).outcome == BypassOutcome::kAttach);
  f.database_addresses = {elsewhere("127.0.0.53")};  // all of 127/8 is loopback, whatever bind said
  CHECK(decide_bypass(f).outcome == BypassOutcome::kAttach);
}

TEST_CASE("auto does not attach for a database on another host, and says which address") {
  BypassFacts f = safe();
  f.database_addresses = {on_host("127.0.0.1"), elsewhere("10.213.0.2")};
  BypassDecision d = decide_bypass(f);
  CHECK(d.outcome == BypassOutcome::kSkip);
  CHECK(d.why.find("10.213.0.2 is neither loopback nor an address of this host") !=
        std::string::npos);
  f.database_addresses = {elsewhere("::2")};
  CHECK(decide_bypass(f).outcome == BypassOutcome::kSkip);
}

TEST_CASE("auto does not attach over a unix socket, an unresolved host or no address") {
  BypassFacts f = safe();
  f.database_unix_socket = true;
  CHECK(decide_bypass(f).outcome == BypassOutcome::kSkip);
  CHECK(decide_bypass(f).why.find("unix socket") != std::string::npos);
  f = safe();
  f.database_resolve_error = "'db.invalid': Name or service not known";
  CHECK(decide_bypass(f).outcome == BypassOutcome::kSkip);
  CHECK(decide_bypass(f).why.find("db.invalid") != std::string::npos);
  f = safe();
  f.database_addresses.clear();
  CHECK(decide_bypass(f).outcome == BypassOutcome::kSkip);
}

TEST_CASE("auto does not attach when leases may be spliced, before asking the kernel") {
  BypassFacts f = safe();
  f.splicing_configured = true;
  f.kernel_refusal = "missing privilege: CAP_BPF";
  BypassDecision d = decide_bypass(f);
  CHECK(d.outcome == BypassOutcome::kSkip);
  CHECK(d.why.find("data_path") != std::string::npos);
}

TEST_CASE(
    "auto does not attach where the kernel's redirect has no flow control (today's kernels)") {
  BypassFacts f = safe();
  f.redirect_flow_control = bpf::kRedirectHasFlowControl;
  BypassDecision d = decide_bypass(f);
  CHECK(d.outcome == BypassOutcome::kSkip);
  CHECK(d.why.find("no flow control") != std::string::npos);
  // Not a kernel refusal (metric 0, not -1): the kernel need not even be probed.
  f.kernel_refusal = "missing privilege: CAP_BPF";
  CHECK(decide_bypass(f).outcome == BypassOutcome::kSkip);
  // What the deployment says comes first: a remote database is named as the reason.
  f.database_addresses = {elsewhere("192.0.2.1")};
  CHECK(decide_bypass(f).why.find("192.0.2.1") != std::string::npos);
}

TEST_CASE("auto reports a kernel refusal as such (metric -1), not as a choice") {
  BypassFacts f = safe();
  f.kernel_refusal = "missing kernel feature: sk_msg";
  BypassDecision d = decide_bypass(f);
  CHECK(d.outcome == BypassOutcome::kKernelRefused);
  CHECK(d.why == "missing kernel feature: sk_msg");
}

TEST_CASE("true and false decide alone, whatever the facts") {
  BypassFacts f = safe();
  f.database_addresses = {elsewhere("192.0.2.1")};
  f.splicing_configured = true;
  f.setting = config::BypassSetting::kOn;
  CHECK(decide_bypass(f).outcome == BypassOutcome::kAttach);
  f = safe();
  f.setting = config::BypassSetting::kOff;
  CHECK(decide_bypass(f).outcome == BypassOutcome::kSkip);
}

TEST_CASE("loopback is 127/8 and ::1 only") {
  CHECK(is_loopback(ip("127.0.0.1")));
  CHECK(is_loopback(ip("127.255.0.9")));
  CHECK(is_loopback(ip("::1")));
  CHECK_FALSE(is_loopback(ip("128.0.0.1")));
  CHECK_FALSE(is_loopback(ip("::")));
  CHECK_FALSE(is_loopback(ip("::ffff:10.0.0.1")));
  CHECK_FALSE(is_loopback(ip("fe80::1")));
}
