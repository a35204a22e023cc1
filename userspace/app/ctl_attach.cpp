// heliosctl attach / detach / edge-counters: the XDP edge guard from the command line.
//   heliosctl attach --dev IFACE --vip ADDR:PORT [--mode native|skb] [--instance NAME]
//                    [--config FILE] [--tenant NAME=CIDR[,CIDR]:RATE[:BURST]]... [--global-rate R]
//                    [--global-burst B] [--drop-fragments] [--update] [--probe]
//   heliosctl detach --dev IFACE [--instance NAME]
//   heliosctl edge-counters [--instance NAME]
// attach leaves the guard running (pinned under /sys/fs/bpf/helios/<instance>/) and prints which
// XDP mode was used; --update rewrites rates and CIDRs of a running guard without detaching.
// Exit codes: 0 ok; 1 the kernel or the privileges refuse (the message says what is missing),
// or nothing is attached; 2 bad arguments or config.
#include <spdlog/spdlog.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "app/ctl_commands.h"
#include "bpf/bpf_error.h"
#include "bpf/xdp_guard.h"
#include "bpf/feature_probe.h"
#include "config/config.h"
#include "proxy/bpf_specs.h"

namespace helios::ctl {
namespace {

struct AttachArgs {
  std::string dev, vip, mode, instance = "default", config;
  std::vector<std::string> tenants;
  double global_rate = -1, global_burst = -1;
  bool drop_fragments = false, update = false, verbose = false, probe = false;
};

int fail(const std::string& what, const Error& e) {
  std::cerr << "heliosctl " << what << ": " << e.message << "\n";
  if (e.code == EINVAL) return kExitUsage;
  return kExitFailed;
}

void set_log_level(bool verbose) {
  spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::warn);
  bpf::route_bpf_library_logs();
}

Result<bpf::EdgeSpec> build_spec(const AttachArgs& a) {
  bpf::EdgeSpec s;
  if (!a.config.empty()) {
    auto cfg = config::load_config_file(a.config);
    if (!cfg) return Error::invalid(a.config + ": " + cfg.error().message);
    s = proxy::edge_spec_from_config(*cfg);
  }
  s.instance = a.instance;
  if (!a.dev.empty()) s.interface = a.dev;
  if (!a.vip.empty()) s.vip = a.vip;
  if (!a.mode.empty()) s.skb_mode = a.mode == "skb";
  if (a.global_rate >= 0) s.global_syn_rate = a.global_rate;
  if (a.global_burst >= 0) s.global_syn_burst = a.global_burst;
  if (a.drop_fragments) s.drop_fragments = true;
  for (const auto& t : a.tenants) {
    auto r = bpf::parse_tenant_flag(t);
    if (!r) return r.error();
    s.tenants.push_back(*r);
  }
  if (s.interface.empty()) return Error::invalid("--dev IFACE is required (or [edge] interface)");
  if (auto v = bpf::validate(s); !v) return v.error();
  return s;
}

// --probe: what this kernel and process can do, without attaching anything.
int run_probe(const CtlContext& ctx) {
  bpf::KernelFeatures f = bpf::probe_kernel_features();
  Status guard = bpf::require_edge_guard(f);
  Status vip = bpf::require_vip_steering(f);
  if (ctx.output == "json") {
    std::cout << nlohmann::json{{"features", bpf::describe(f)},
                                {"edge_guard", guard.ok() ? "ok" : guard.error().message},
                                {"vip_steering", vip.ok() ? "ok" : vip.error().message}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << bpf::describe(f) << "\n"
              << "edge guard: " << (guard.ok() ? "ok" : guard.error().message) << "\n"
              << "vip steering: " << (vip.ok() ? "ok" : vip.error().message) << "\n";
  }
  return guard.ok() ? kExitOk : kExitFailed;
}

int run_attach(const AttachArgs& a, const CtlContext& ctx) {
  set_log_level(a.verbose);
  if (a.probe) return run_probe(ctx);
  auto spec = build_spec(a);
  if (!spec) return fail("attach", spec.error());
  const bool json = ctx.output == "json";
  if (a.update) {
    auto g = bpf::EdgeGuard::open_pinned(spec->instance);
    if (!g) return fail("attach --update", g.error());
    if (auto s = g->update(*spec); !s) return fail("attach --update", s.error());
    if (json)
      std::cout << nlohmann::json{{"instance", spec->instance},
                                  {"updated", true},
                                  {"mode", g->mode_name()},
                                  {"prog_id", g->prog_id()}}
                       .dump(2)
                << "\n";
    else
      std::cout << "updated edge guard instance " << spec->instance << " (" << spec->tenants.size()
                << " tenants, program " << g->prog_id() << " stays attached)\n";
    return kExitOk;
  }
  auto g = bpf::EdgeGuard::attach(*spec);
  if (!g) {
    int rc = fail("attach", g.error());
    if (bpf::is_missing_feature(g.error())) std::cerr << "heliosctl attach: nothing was attached\n";
    return rc;
  }
  g->release();  // keep running after heliosctl exits
  if (json) {
    std::cout << nlohmann::json{{"instance", spec->instance},
                                {"interface", spec->interface},
                                {"vip", spec->vip},
                                {"mode", g->mode_name()},
                                {"prog_id", g->prog_id()},
                                {"pins", g->pin_path()},
                                {"tenants", spec->tenants.size()}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << "attached xdp_guard to " << spec->interface << " for " << spec->vip << "\n"
              << "  xdp mode: " << g->mode_name() << "\n"
              << "  program id: " << g->prog_id() << "\n"
              << "  pins: " << g->pin_path() << "/\n"
              << "  tenants: " << spec->tenants.size() << "\n";
    if (!spec->skb_mode && bpf::interface_driver(spec->interface) == "veth")
      std::cout << "  note: native XDP on a veth drops packets when a burst overflows its "
                   "256-slot ring (see bench/edge/README.md); --mode skb avoids that\n";
  }
  return kExitOk;
}

int run_detach(const std::string& dev, const std::string& instance, bool verbose) {
  set_log_level(verbose);
  if (auto s = bpf::EdgeGuard::detach(dev, instance); !s) return fail("detach", s.error());
  std::cout << "detached edge guard instance " << instance << " from " << dev << "\n";
  return kExitOk;
}

int run_counters(const std::string& instance, const CtlContext& ctx) {
  set_log_level(false);
  auto g = bpf::EdgeGuard::open_pinned(instance);
  if (!g) return fail("edge-counters", g.error());
  auto counters = g->counters();
  if (!counters) return fail("edge-counters", counters.error());
  auto stats = g->stats();
  if (!stats) return fail("edge-counters", stats.error());
  if (ctx.output == "json") {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& c : *counters)
      rows.push_back({{"tenant", c.tenant},
                      {"tenant_id", c.tenant_id},
                      {"packets", c.packets},
                      {"bytes", c.bytes},
                      {"syn_seen", c.syn_seen},
                      {"syn_passed", c.syn_passed},
                      {"syn_dropped", c.syn_dropped},
                      {"syn_dropped_global", c.syn_dropped_global}});
    nlohmann::json out{{"instance", instance},
                       {"mode", g->mode_name()},
                       {"tenants", rows},
                       {"stats",
                        {{"packets", stats->packets},
                         {"vip_packets", stats->vip_packets},
                         {"non_vip", stats->non_vip},
                         {"short_headers", stats->short_headers},
                         {"malformed", stats->malformed},
                         {"fragments", stats->fragments},
                         {"fragments_dropped", stats->fragments_dropped},
                         {"ipv6_ext_unwalked", stats->ipv6_ext_unwalked},
                         {"syn_dropped", stats->syn_dropped}}}};
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::printf("instance %s, %s\n", instance.c_str(), g->mode_name().c_str());
  std::printf("%-32s %12s %14s %10s %10s %10s %10s\n", "tenant", "packets", "bytes", "syn",
              "passed", "dropped", "global_drop");
  for (const auto& c : *counters)
    std::printf("%-32s %12llu %14llu %10llu %10llu %10llu %10llu\n", c.tenant.c_str(),
                (unsigned long long)c.packets, (unsigned long long)c.bytes,
                (unsigned long long)c.syn_seen, (unsigned long long)c.syn_passed,
                (unsigned long long)c.syn_dropped, (unsigned long long)c.syn_dropped_global);
  std::printf(
      "all packets %llu, to a VIP %llu, other %llu, short %llu, malformed %llu, "
      "fragments %llu\n",
      (unsigned long long)stats->packets, (unsigned long long)stats->vip_packets,
      (unsigned long long)stats->non_vip, (unsigned long long)stats->short_headers,
      (unsigned long long)stats->malformed, (unsigned long long)stats->fragments);
  return kExitOk;
}

}  // namespace

void register_attach_commands(CLI::App& app, CtlContext& ctx) {
  auto args = std::make_shared<AttachArgs>();
  CLI::App* attach = app.add_subcommand("attach", "attach the XDP edge guard to a NIC");
  attach->add_option("--dev", args->dev, "network interface (default: [edge] interface)");
  attach->add_option("--vip", args->vip, "ADDR:PORT or [V6ADDR]:PORT to guard (comma separated)");
  attach->add_option("--mode", args->mode, "XDP mode: native (default) or skb (generic)")
      ->check(CLI::IsMember({"native", "skb"}));
  attach->add_option("--instance", args->instance, "pin name under /sys/fs/bpf/helios/")
      ->capture_default_str();
  attach->add_option("--config", args->config, "proxy config: [edge] and edge_* tenant keys");
  attach->add_option("--tenant", args->tenants, "NAME=CIDR[,CIDR]:RATE[:BURST] (RATE 0: no limit)");
  attach->add_option("--global-rate", args->global_rate, "global SYNs per second (0: no limit)");
  attach->add_option("--global-burst", args->global_burst, "global SYN bucket depth");
  attach->add_flag("--drop-fragments", args->drop_fragments, "drop IP fragments to a VIP address");
  attach->add_flag("--update", args->update, "rewrite rates/CIDRs of a running guard (no detach)");
  attach->add_flag("-v,--verbose", args->verbose, "libbpf/libxdp debug output");
  attach->add_flag("--probe", args->probe, "only report which kernel features are present");
  attach->callback([args, &ctx] { ctx.exit_code = run_attach(*args, ctx); });

  auto det = std::make_shared<AttachArgs>();
  CLI::App* detach = app.add_subcommand("detach", "remove the XDP edge guard and its pins");
  detach->add_option("--dev", det->dev, "network interface")->required();
  detach->add_option("--instance", det->instance, "pin name")->capture_default_str();
  detach->add_flag("-v,--verbose", det->verbose, "libbpf/libxdp debug output");
  detach->callback(
      [det, &ctx] { ctx.exit_code = run_detach(det->dev, det->instance, det->verbose); });

  auto cnt = std::make_shared<AttachArgs>();
  CLI::App* counters = app.add_subcommand("edge-counters", "per-tenant XDP guard counters");
  counters->add_option("--instance", cnt->instance, "pin name")->capture_default_str();
  counters->callback([cnt, &ctx] { ctx.exit_code = run_counters(cnt->instance, ctx); });
}

}  // namespace helios::ctl
