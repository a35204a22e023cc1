#include "tenant/planner.h"

#include <fmt/format.h>

#include <toml++/toml.h>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

namespace helios::tenant {
namespace {

constexpr size_t kMaxTierName = 64;

bool valid_tier_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxTierName) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

bool valid_pool_mode(std::string_view s) {
  return s.empty() || s == "session" || s == "transaction" || s == "statement";
}

// Fixed decimals, then trailing zeros trimmed down to min_decimals: 25.000 -> "25", 3 -> "3.0".
std::string decimal(double v, int max_decimals, int min_decimals) {
  std::string s = fmt::format("{:.{}f}", v, max_decimals);
  size_t dot = s.find('.');
  if (dot == std::string::npos) return s;
  size_t keep = dot + 1 + size_t(min_decimals);
  while (s.size() > keep && s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

// Shortest round-trip form, always a TOML float ("120.0", "0.025"). toml++ 3.3's own formatter
// prints 17 significant digits (0.025000000000000001), which is not paste-ready.
std::string toml_float(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

// Display width of UTF-8 text (each code point is one column here).
size_t width(std::string_view s) {
  return size_t(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::string pad(std::string_view s, size_t w, bool right) {
  std::string fill(w > width(s) ? w - width(s) : 0, ' ');
  return right ? fill + std::string(s) : std::string(s) + fill;
}

bool parse_double(std::string_view s, double& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && std::isfinite(out);
}

bool parse_u32(std::string_view s, uint32_t& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    out.push_back(
        s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) return out;
    start = pos + 1;
  }
}

// ---- plan file (toml++) ----

std::string at_line(const std::string& source, const toml::node& node) {
  return source + ":" + std::to_string(node.source().begin.line);
}

struct FileReader {
  const std::string& source;
  std::string error;  // first error, "path:line: message"

  bool fail(const toml::node& node, std::string message) {
    if (error.empty()) error = at_line(source, node) + ": " + std::move(message);
    return false;
  }

  bool read_number(const toml::node& node, std::string_view what, double& out) {
    if (auto f = node.value<double>(); f && (node.is_floating_point() || node.is_integer())) {
      out = *f;
      if (std::isfinite(out)) return true;
    }
    return fail(node, std::string(what) + " must be a number");
  }

  bool read_count(const toml::node& node, std::string_view what, uint32_t min, uint32_t& out) {
    const auto* i = node.as_integer();
    if (!i) return fail(node, std::string(what) + " must be an integer");
    int64_t v = i->get();
    if (v < int64_t(min) || v > int64_t(std::numeric_limits<uint32_t>::max()))
      return fail(node, fmt::format("{} must be at least {}, got {}", what, min, v));
    out = uint32_t(v);
    return true;
  }

  bool read_string(const toml::node& node, std::string_view what, std::string& out) {
    const auto* s = node.as_string();
    if (!s) return fail(node, std::string(what) + " must be a string");
    out = s->get();
    return true;
  }
};

bool read_database(FileReader& r, const toml::table& db, PlanInput& plan) {
  for (const auto& [key, node] : db) {
    std::string what = "[database] " + std::string(key.str());
    if (key == "max_connections") {
      if (!r.read_count(node, what, 1, plan.db_max_connections)) return false;
    } else if (key == "reserved") {
      if (!r.read_count(node, what, 0, plan.reserved)) return false;
    } else if (key == "default_pool") {
      if (!r.read_count(node, what, 0, plan.default_pool)) return false;
    } else if (key == "hosts") {
      if (!r.read_count(node, what, 1, plan.hosts)) return false;
    } else {
      return r.fail(node, "unknown key " + what +
                              " (expected max_connections, reserved, default_pool, hosts)");
    }
  }
  return true;
}

bool read_proxy(FileReader& r, const toml::table& proxy, PlanInput& plan) {
  for (const auto& [key, node] : proxy) {
    std::string what = "[proxy] " + std::string(key.str());
    if (key == "instances") {
      if (!r.read_count(node, what, 1, plan.instances)) return false;
    } else if (key == "fleet") {
      const auto* b = node.as_boolean();
      if (!b) return r.fail(node, what + " must be true or false");
      plan.fleet = b->get();
    } else {
      return r.fail(node, "unknown key " + what + " (expected instances, fleet)");
    }
  }
  return true;
}

bool read_tier(FileReader& r, std::string_view name, const toml::table& t, TierInput& tier) {
  tier.name = std::string(name);
  tier.origin = at_line(r.source, t);
  const std::string label = "[tiers." + tier.name + "]";
  // TierInput field -> the node that set it, so check_tier's complaint points at its line.
  std::vector<std::pair<std::string_view, const toml::node*>> field_nodes;
  bool saw_tenants = false;
  for (const auto& [key, node] : t) {
    std::string what = label + " " + std::string(key.str());
    std::string_view field = key.str();
    if (key == "mode") {
      std::string mode;
      if (!r.read_string(node, what, mode)) return false;
      if (mode == "dedicated")
        tier.mode = TierMode::kDedicated;
      else if (mode == "shared")
        tier.mode = TierMode::kShared;
      else
        return r.fail(node, what + " must be \"dedicated\" or \"shared\", got \"" + mode + "\"");
    } else if (key == "peak_qps") {
      if (!r.read_number(node, what, tier.peak_qps)) return false;
    } else if (key == "mean_service_s") {
      if (!r.read_number(node, what, tier.mean_service_s)) return false;
    } else if (key == "burst_factor") {
      if (!r.read_number(node, what, tier.burst_factor)) return false;
    } else if (key == "expected_tenants" || key == "tenants") {
      if (saw_tenants) return r.fail(node, label + " sets both expected_tenants and tenants");
      saw_tenants = true;
      if (!r.read_count(node, what, 1, tier.tenants)) return false;
      field = "tenants";
    } else if (key == "weight") {
      if (!r.read_count(node, what, 1, tier.weight)) return false;
    } else if (key == "pool_mode") {
      if (!r.read_string(node, what, tier.pool_mode)) return false;
    } else {
      return r.fail(node, "unknown key " + what +
                              " (expected mode, peak_qps, mean_service_s, burst_factor, "
                              "expected_tenants, weight, pool_mode)");
    }
    field_nodes.emplace_back(field, &node);
  }
  for (std::string_view required : {"peak_qps", "mean_service_s"})
    if (!t.contains(required)) return r.fail(t, label + " needs " + std::string(required));
  if (auto problem = check_tier(tier)) {
    const toml::node* where = &t;
    for (const auto& [field, node] : field_nodes)
      if (field == problem->field) where = node;
    return r.fail(*where, label + " " + problem->message);
  }
  return true;
}

}  // namespace

const char* tier_mode_name(TierMode m) {
  return m == TierMode::kDedicated ? "dedicated" : "shared";
}

uint32_t plan_pool_size(double peak_qps, double mean_service_s, double burst_factor) {
  double x = peak_qps * mean_service_s * burst_factor;
  // 120 * 0.025 * 2.0 is 6.000000000000001 in binary floating point: snap values within 1e-9
  // (relative) of an integer to it before taking the ceiling.
  double nearest = std::round(x);
  double size =
      std::fabs(x - nearest) <= 1e-9 * std::max(1.0, std::fabs(x)) ? nearest : std::ceil(x);
  if (!(size >= 1)) return 1;
  if (size > double(std::numeric_limits<uint32_t>::max()))
    return std::numeric_limits<uint32_t>::max();
  return uint32_t(size);
}

std::optional<TierProblem> check_tier(const TierInput& t) {
  if (!valid_tier_name(t.name))
    return TierProblem{"name",
                       "tier name \"" + t.name + "\" must be 1-64 characters of A-Z a-z 0-9 _ -"};
  if (!(t.peak_qps > 0) || !std::isfinite(t.peak_qps))
    return TierProblem{"peak_qps", "peak_qps must be > 0, got " + decimal(t.peak_qps, 6, 0)};
  if (!(t.mean_service_s > 0) || !std::isfinite(t.mean_service_s))
    return TierProblem{"mean_service_s", "mean_service_s must be > 0 seconds, got " +
                                             decimal(t.mean_service_s, 6, 0)};
  if (!(t.burst_factor >= 1) || !std::isfinite(t.burst_factor) || t.burst_factor > 1000)
    return TierProblem{"burst_factor",
                       "burst_factor must be between 1.0 and 1000 (the pool may "
                       "not be smaller than its steady-state need), got " +
                           decimal(t.burst_factor, 6, 1)};
  if (double(t.peak_qps) * t.mean_service_s * t.burst_factor > 1e7)
    return TierProblem{"peak_qps",
                       "peak_qps x mean_service_s x burst_factor is over 10 million "
                       "connections; check the units (mean_service_s is seconds)"};
  if (t.tenants < 1) return TierProblem{"tenants", "tenants must be at least 1"};
  if (t.weight < 1) return TierProblem{"weight", "weight must be at least 1"};
  if (!valid_pool_mode(t.pool_mode))
    return TierProblem{"pool_mode", "pool_mode must be session, transaction or statement, got \"" +
                                        t.pool_mode + "\""};
  return std::nullopt;
}

namespace {
// How many times the pools of one instance count against the database.
uint32_t plan_copies(const Plan& p) {
  return p.fleet ? 1 : p.instances;
}
}  // namespace

Result<Plan> make_plan(const PlanInput& in) {
  auto where = [](const TierInput& t) { return t.origin.empty() ? t.name : t.origin; };
  if (in.tiers.empty()) return Error::invalid("no tiers to plan (use --tier or --file)");
  if (in.db_max_connections == 0)
    return Error::invalid(
        "the database's max_connections is required (--db-max-connections, or [database] "
        "max_connections in the plan file)");
  Plan plan;
  plan.db_max_connections = in.db_max_connections;
  plan.reserved = in.reserved;
  plan.default_pool = in.default_pool;
  if (in.instances < 1) return Error::invalid("instances must be at least 1");
  plan.instances = in.instances;
  plan.fleet = in.fleet;
  if (in.hosts < 1) return Error::invalid("hosts must be at least 1");
  plan.hosts = in.hosts;
  plan.health_checks = in.hosts > 1 ? in.instances : 0;
  uint64_t per_instance = in.default_pool;
  for (size_t i = 0; i < in.tiers.size(); ++i) {
    const TierInput& t = in.tiers[i];
    if (auto problem = check_tier(t)) return Error::invalid(where(t) + ": " + problem->message);
    for (size_t j = 0; j < i; ++j)
      if (in.tiers[j].name == t.name)
        return Error::invalid(where(t) + ": tier \"" + t.name + "\" is defined twice (first at " +
                              where(in.tiers[j]) + ")");
    TierPlan tp;
    tp.input = t;
    tp.concurrency = t.peak_qps * t.mean_service_s;
    tp.pool_size = plan_pool_size(t.peak_qps, t.mean_service_s, t.burst_factor);
    tp.pools = t.mode == TierMode::kDedicated ? t.tenants : 1;
    tp.connections = uint64_t(tp.pool_size) * tp.pools;
    per_instance += tp.connections;
    plan.tiers.push_back(std::move(tp));
  }
  plan.per_instance = per_instance;
  const uint64_t total = per_instance * plan_copies(plan) + plan.health_checks + in.reserved;
  plan.total = total;
  plan.fits = total <= in.db_max_connections;
  plan.over_by = plan.fits ? 0 : total - in.db_max_connections;
  plan.spare = plan.fits ? in.db_max_connections - total : 0;
  return plan;
}

Result<TierInput> parse_tier_spec(std::string_view spec) {
  const std::string origin = "--tier " + std::string(spec);
  auto bad = [&](std::string what) { return Error::invalid(origin + ": " + std::move(what)); };
  std::vector<std::string_view> f = split(spec, ':');
  if (f.size() < 6 || f.size() > 8)
    return bad(
        "expected NAME:MODE:PEAK_QPS:MEAN_SERVICE_S:BURST:TENANTS[:WEIGHT[:POOL_MODE]], got " +
        std::to_string(f.size()) + " fields");
  TierInput t;
  t.origin = origin;
  t.name = std::string(f[0]);
  if (f[1] == "dedicated")
    t.mode = TierMode::kDedicated;
  else if (f[1] == "shared")
    t.mode = TierMode::kShared;
  else
    return bad("mode must be dedicated or shared, got \"" + std::string(f[1]) + "\"");
  if (!parse_double(f[2], t.peak_qps))
    return bad("peak_qps \"" + std::string(f[2]) + "\" is not a number");
  if (!parse_double(f[3], t.mean_service_s))
    return bad("mean_service_s \"" + std::string(f[3]) + "\" is not a number (seconds)");
  std::string_view burst = f[4];
  if (!burst.empty() && (burst.back() == 'x' || burst.back() == 'X')) burst.remove_suffix(1);
  if (!parse_double(burst, t.burst_factor))
    return bad("burst_factor \"" + std::string(f[4]) + "\" is not a number");
  if (!parse_u32(f[5], t.tenants))
    return bad("tenants \"" + std::string(f[5]) + "\" is not a whole number");
  if (f.size() > 6 && !parse_u32(f[6], t.weight))
    return bad("weight \"" + std::string(f[6]) + "\" is not a whole number");
  if (f.size() > 7) t.pool_mode = std::string(f[7]);
  if (auto problem = check_tier(t)) return bad(problem->message);
  return t;
}

Result<PlanInput> parse_plan_toml(std::string_view text, const std::string& source_name) {
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    return Error::invalid(source_name + ":" + std::to_string(e.source().begin.line) + ": " +
                          std::string(e.description()));
  }
  PlanInput plan;
  FileReader r{source_name, {}};
  std::vector<std::pair<uint32_t, TierInput>> tiers;  // (line, tier) to restore file order
  for (const auto& [key, node] : root) {
    if (key == "database") {
      const auto* db = node.as_table();
      if (!db) {
        r.fail(node, "[database] must be a table");
        break;
      }
      if (!read_database(r, *db, plan)) break;
    } else if (key == "proxy") {
      const auto* px = node.as_table();
      if (!px) {
        r.fail(node, "[proxy] must be a table");
        break;
      }
      if (!read_proxy(r, *px, plan)) break;
    } else if (key == "tiers") {
      const auto* all = node.as_table();
      if (!all) {
        r.fail(node, "tiers must be a table of [tiers.<name>] tables");
        break;
      }
      for (const auto& [name, tnode] : *all) {
        const auto* t = tnode.as_table();
        if (!t) {
          r.fail(tnode, "tiers." + std::string(name.str()) + " must be a table");
          break;
        }
        TierInput tier;
        if (!read_tier(r, name.str(), *t, tier)) break;
        tiers.emplace_back(t->source().begin.line, std::move(tier));
      }
      if (!r.error.empty()) break;
    } else {
      r.fail(node, "unknown section [" + std::string(key.str()) +
                       "] (expected [database], [proxy] and [tiers.<name>])");
      break;
    }
  }
  if (!r.error.empty()) return Error::invalid(r.error);
  std::stable_sort(tiers.begin(), tiers.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [line, tier] : tiers) plan.tiers.push_back(std::move(tier));
  if (plan.tiers.empty()) return Error::invalid(source_name + ": no [tiers.<name>] tables");
  return plan;
}

Result<PlanInput> load_plan_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::from_errno(path);
  std::ostringstream text;
  text << in.rdbuf();
  return parse_plan_toml(text.str(), path);
}

std::string plan_verdict(const Plan& p) {
  const uint32_t copies = plan_copies(p);
  const uint64_t in_pools = p.total - p.reserved - p.health_checks;
  std::string pools = fmt::format("{} in pools", in_pools);
  if (copies > 1)
    pools = fmt::format("{} in pools ({} per instance x {} instances)", in_pools, p.per_instance,
                        copies);
  else if (p.instances > 1)
    pools += fmt::format(" (shared by {} instances through [fleet])", p.instances);
  if (p.health_checks > 0) pools += fmt::format(" + {} health check", p.health_checks);
  const std::string where = p.hosts > 1 ? fmt::format(" on each of the {} hosts", p.hosts) : "";
  if (p.fits)
    return fmt::format("fits{}: {} + {} reserved = {} of {} connections, {} spare", where, pools,
                       p.reserved, p.total, p.db_max_connections, p.spare);
  std::string out =
      fmt::format("over budget{} by {}: {} + {} reserved = {} connections, the database allows {}",
                  where, p.over_by, pools, p.reserved, p.total, p.db_max_connections);
  std::vector<std::string> remedies;
  remedies.push_back(fmt::format("raise max_connections to {}", p.total));
  if (copies > 1 && p.per_instance + p.health_checks + p.reserved <= p.db_max_connections)
    remedies.push_back(
        fmt::format("share the pools across the instances with [fleet] (then {} of {})",
                    p.per_instance + p.health_checks + p.reserved, p.db_max_connections));
  for (const TierPlan& t : p.tiers) {
    if (t.input.mode != TierMode::kDedicated) continue;
    // Connections of everything else, across the instances; this tier's pools count `copies`
    // times too.
    uint64_t others = p.total - t.connections * copies;
    if (others >= p.db_max_connections) continue;
    uint64_t fit = (p.db_max_connections - others) / (uint64_t(t.pool_size) * copies);
    if (fit >= 1 && fit < t.pools)
      remedies.push_back(fmt::format("budget {} for at most {} dedicated tenants ({} each)",
                                     t.input.name, fit, t.pool_size));
  }
  out += "\nto fit: ";
  for (size_t i = 0; i < remedies.size(); ++i) out += (i ? ", or " : "") + remedies[i];
  return out;
}

std::string format_plan_table(const Plan& p) {
  using Row = std::vector<std::string>;
  const Row header = {"Tier",  "Mode",      "Peak QPS", "Service (ms)", "L = λ·W",
                      "Burst", "Pool size", "Pools",    "Connections"};
  // Right-aligned columns: the numbers.
  const bool right[] = {false, false, true, true, true, true, false, true, true};
  std::vector<Row> rows;
  for (const TierPlan& t : p.tiers) {
    bool dedicated = t.input.mode == TierMode::kDedicated;
    rows.push_back({t.input.name, tier_mode_name(t.input.mode), decimal(t.input.peak_qps, 3, 0),
                    decimal(t.input.mean_service_s * 1000, 3, 0), decimal(t.concurrency, 2, 1),
                    decimal(t.input.burst_factor, 2, 1) + "x",
                    fmt::format("{} / {}", t.pool_size, dedicated ? "tenant" : "group"),
                    std::to_string(t.pools), std::to_string(t.connections)});
  }
  if (p.default_pool > 0)
    rows.push_back({"default pool", "", "", "", "", "", std::to_string(p.default_pool), "1",
                    std::to_string(p.default_pool)});
  if (plan_copies(p) > 1)
    rows.push_back({fmt::format("x {} instances", p.instances), "", "", "", "", "", "", "",
                    std::to_string(p.total - p.reserved - p.health_checks)});
  if (p.health_checks > 0)
    rows.push_back({fmt::format("health check ({} hosts)", p.hosts), "", "", "", "", "", "1",
                    std::to_string(p.instances), std::to_string(p.health_checks)});
  rows.push_back({"Reserved", "", "", "", "", "", "", "", std::to_string(p.reserved)});
  rows.push_back(
      {"Total", "", "", "", "", "", "", "", fmt::format("{} / {}", p.total, p.db_max_connections)});

  std::vector<size_t> w(header.size());
  for (size_t c = 0; c < header.size(); ++c) {
    w[c] = width(header[c]);
    for (const Row& r : rows) w[c] = std::max(w[c], width(r[c]));
  }
  auto line = [&](const Row& r) {
    std::string out;
    for (size_t c = 0; c < r.size(); ++c) out += (c ? "  " : "") + pad(r[c], w[c], right[c]);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = line(header);
  for (const Row& r : rows) out += line(r);
  return out + plan_verdict(p) + "\n";
}

std::string format_plan_toml(const Plan& p) {
  std::string out = fmt::format(
      "# Tier pools from heliosctl plan: {} of {} connections ({}). Paste into "
      "helios-proxy.toml.\n",
      p.total, p.db_max_connections,
      p.fits ? fmt::format("{} spare", p.spare) : fmt::format("over budget by {}", p.over_by));
  for (const TierPlan& t : p.tiers) {
    const TierInput& in = t.input;
    bool dedicated = in.mode == TierMode::kDedicated;
    out += fmt::format("\n# L = {} x {} = {}; pool_size = ceil({} x {}) = {}",
                       decimal(in.peak_qps, 3, 0), toml_float(in.mean_service_s),
                       decimal(t.concurrency, 2, 1), decimal(t.concurrency, 2, 1),
                       decimal(in.burst_factor, 2, 1), t.pool_size);
    if (dedicated)
      out += fmt::format(" per tenant; {} tenants = {} connections\n", t.pools, t.connections);
    else if (in.tenants > 1)
      out += fmt::format(" for the group of {} tenants\n", in.tenants);
    else
      out += " for the group\n";
    out += fmt::format("[tiers.{}]\n", in.name);  // names are bare-key safe (check_tier)
    out += fmt::format("mode = \"{}\"\n", tier_mode_name(in.mode));
    out += fmt::format("pool_size = {}\n", t.pool_size);
    if (dedicated) out += fmt::format("expected_tenants = {}\n", in.tenants);
    out += fmt::format("weight = {}\n", in.weight);
    if (!in.pool_mode.empty()) out += fmt::format("pool_mode = \"{}\"\n", in.pool_mode);
    out += fmt::format("peak_qps = {}\n", toml_float(in.peak_qps));
    out += fmt::format("mean_service_s = {}\n", toml_float(in.mean_service_s));
    out += fmt::format("burst_factor = {}\n", toml_float(in.burst_factor));
  }
  return out;
}

std::string format_plan_json(const Plan& p) {
  nlohmann::ordered_json tiers = nlohmann::ordered_json::array();
  for (const TierPlan& t : p.tiers) {
    nlohmann::ordered_json j{
        {"name", t.input.name},         {"mode", tier_mode_name(t.input.mode)},
        {"peak_qps", t.input.peak_qps}, {"mean_service_s", t.input.mean_service_s},
        {"concurrency", t.concurrency}, {"burst_factor", t.input.burst_factor},
        {"pool_size", t.pool_size},     {"pools", t.pools},
        {"connections", t.connections}, {"expected_tenants", t.input.tenants},
        {"weight", t.input.weight}};
    if (!t.input.pool_mode.empty()) j["pool_mode"] = t.input.pool_mode;
    tiers.push_back(std::move(j));
  }
  nlohmann::ordered_json out{{"tiers", tiers},
                             {"default_pool", p.default_pool},
                             {"reserved", p.reserved},
                             {"instances", p.instances},
                             {"fleet", p.fleet},
                             {"per_instance", p.per_instance},
                             {"hosts", p.hosts},
                             {"health_checks", p.health_checks},
                             {"total", p.total},
                             {"db_max_connections", p.db_max_connections},
                             {"fits", p.fits},
                             {"over_by", p.over_by},
                             {"spare", p.spare},
                             {"verdict", plan_verdict(p)},
                             {"toml", format_plan_toml(p)}};
  return out.dump(2) + "\n";
}

int run_plan(const PlanRequest& request, std::ostream& out, std::ostream& err) {
  PlanInput input;
  if (!request.file.empty()) {
    auto loaded = load_plan_file(request.file);
    if (!loaded) {
      err << "heliosctl plan: " << loaded.error().message << "\n";
      return kPlanBadInput;
    }
    input = std::move(*loaded);
  }
  for (const std::string& spec : request.tier_specs) {
    auto tier = parse_tier_spec(spec);
    if (!tier) {
      err << "heliosctl plan: " << tier.error().message << "\n";
      return kPlanBadInput;
    }
    input.tiers.push_back(std::move(*tier));
  }
  if (request.db_max_connections) input.db_max_connections = *request.db_max_connections;
  if (request.reserved) input.reserved = *request.reserved;
  if (request.default_pool) input.default_pool = *request.default_pool;
  if (request.instances) input.instances = *request.instances;
  if (request.fleet) input.fleet = *request.fleet;
  if (request.hosts) input.hosts = *request.hosts;
  auto plan = make_plan(input);
  if (!plan) {
    err << "heliosctl plan: " << plan.error().message << "\n";
    return kPlanBadInput;
  }
  if (request.json)
    out << format_plan_json(*plan);
  else
    out << format_plan_table(*plan) << "\n" << format_plan_toml(*plan);
  return plan->fits ? kPlanFits : kPlanOverBudget;
}

}  // namespace helios::tenant
