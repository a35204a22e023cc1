#include <doctest/doctest.h>

#include <toml++/toml.h>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tenant/planner.h"

using namespace helios;
using namespace helios::tenant;

namespace {

// Seed 003's worked example.
PlanRequest seed003_request() {
  PlanRequest r;
  r.tier_specs = {"premium:dedicated:120:0.025:2.0:25", "standard:shared:300:0.040:1.5:1",
                  "free:shared:200:0.060:1.3:1"};
  r.db_max_connections = 200;
  r.reserved = 20;
  return r;
}

struct Run {
  int code;
  std::string out, err;
};

Run run(const PlanRequest& r) {
  std::ostringstream out, err;
  int code = run_plan(r, out, err);
  return {code, out.str(), err.str()};
}

std::string temp_file(const std::string& text) {
  char path[] = "/tmp/helios_plan_test_XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  FILE* f = fdopen(fd, "w");
  fputs(text.c_str(), f);
  fclose(f);
  return path;
}

}  // namespace

TEST_CASE("plan_pool_size: ceil(L x burst) without floating-point noise") {
  CHECK(plan_pool_size(120, 0.025, 2.0) == 6);  // 6.000000000000001 in doubles
  CHECK(plan_pool_size(300, 0.040, 1.5) == 18);
  CHECK(plan_pool_size(200, 0.060, 1.3) == 16);  // 15.6
  CHECK(plan_pool_size(40, 0.060, 1.3) == 4);    // seed 003 step 3: ceil(2.4 x 1.3)
  CHECK(plan_pool_size(1, 0.001, 1.0) == 1);     // never below 1
  CHECK(plan_pool_size(100, 0.1, 1.01) == 11);   // 10.1 really rounds up
  CHECK(plan_pool_size(0.1 * 3, 10, 1.0) == 3);  // 0.30000000000000004 x 10
}

TEST_CASE("heliosctl plan reproduces seed 003's worked table: 204 / 200, over budget") {
  auto plan = make_plan([] {
    PlanInput in;
    for (const char* spec : {"premium:dedicated:120:0.025:2.0:25",
                             "standard:shared:300:0.040:1.5:1", "free:shared:200:0.060:1.3:1"})
      in.tiers.push_back(*parse_tier_spec(spec));
    in.db_max_connections = 200;
    in.reserved = 20;
    return in;
  }());
  REQUIRE(plan.ok());
  REQUIRE(plan->tiers.size() == 3);
  const TierPlan& premium = plan->tiers[0];
  CHECK(premium.concurrency == doctest::Approx(3.0));
  CHECK(premium.pool_size == 6);
  CHECK(premium.pools == 25);
  CHECK(premium.connections == 150);
  CHECK(plan->tiers[1].concurrency == doctest::Approx(12.0));
  CHECK(plan->tiers[1].pool_size == 18);
  CHECK(plan->tiers[1].pools == 1);
  CHECK(plan->tiers[1].connections == 18);
  CHECK(plan->tiers[2].concurrency == doctest::Approx(12.0));
  CHECK(plan->tiers[2].pool_size == 16);
  CHECK(plan->tiers[2].connections == 16);
  CHECK(plan->total == 204);
  CHECK_FALSE(plan->fits);
  CHECK(plan->over_by == 4);

  Run r = run(seed003_request());
  CHECK(r.code == kPlanOverBudget);
  CHECK(r.err.empty());
  // The table a user sees, column for column.
  const std::string expected_table =
      R"(Tier      Mode       Peak QPS  Service (ms)  L = λ·W  Burst  Pool size   Pools  Connections
premium   dedicated       120            25      3.0   2.0x  6 / tenant     25          150
standard  shared          300            40     12.0   1.5x  18 / group      1           18
free      shared          200            60     12.0   1.3x  16 / group      1           16
Reserved                                                                                 20
Total                                                                             204 / 200
over budget by 4: 184 in pools + 20 reserved = 204 connections, the database allows 200
to fit: raise max_connections to 204, or budget premium for at most 24 dedicated tenants (6 each)
)";
  CHECK(r.out.substr(0, expected_table.size()) == expected_table);
}

TEST_CASE("heliosctl plan: the TOML snippet parses and carries the config's tier keys") {
  Run r = run(seed003_request());
  size_t at = r.out.find("# Tier pools");
  REQUIRE(at != std::string::npos);
  toml::table t = toml::parse(r.out.substr(at));
  auto premium = t["tiers"]["premium"];
  CHECK(premium["mode"].value<std::string>() == "dedicated");
  CHECK(premium["pool_size"].value<int64_t>() == 6);
  CHECK(premium["expected_tenants"].value<int64_t>() == 25);
  CHECK(premium["weight"].value<int64_t>() == 1);
  CHECK(premium["peak_qps"].value<double>() == 120.0);
  CHECK(premium["mean_service_s"].value<double>() == 0.025);
  CHECK(premium["burst_factor"].value<double>() == 2.0);
  CHECK_FALSE(premium["pool_mode"]);  // inherit unless given
  auto standard = t["tiers"]["standard"];
  CHECK(standard["mode"].value<std::string>() == "shared");
  CHECK(standard["pool_size"].value<int64_t>() == 18);
  CHECK_FALSE(standard["expected_tenants"]);  // only meaningful for dedicated tiers
  CHECK(t["tiers"]["free"]["pool_size"].value<int64_t>() == 16);
  CHECK(r.out.find("mean_service_s = 0.025\n") != std::string::npos);  // no 17-digit noise
  CHECK(r.out.find("pool_size = ceil(3.0 x 2.0) = 6 per tenant; 25 tenants = 150") !=
        std::string::npos);
}

TEST_CASE("heliosctl plan: a plan that fits exits 0") {
  PlanRequest r = seed003_request();
  r.tier_specs[0] = "premium:dedicated:120:0.025:2.0:20:4:session";  // the seed's remedy
  Run out = run(r);
  CHECK(out.code == kPlanFits);
  CHECK(out.out.find("Total") != std::string::npos);
  CHECK(out.out.find("174 / 200") != std::string::npos);
  CHECK(out.out.find("fits: 154 in pools + 20 reserved = 174 of 200 connections, 26 spare") !=
        std::string::npos);
  CHECK(out.out.find("pool_mode = \"session\"") != std::string::npos);
  CHECK(out.out.find("weight = 4") != std::string::npos);

  // Exactly at the ceiling still fits.
  PlanRequest edge = seed003_request();
  edge.db_max_connections = 204;
  CHECK(run(edge).code == kPlanFits);

  // A default pool counts against the budget.
  PlanRequest with_default = r;
  with_default.default_pool = 27;
  Run over = run(with_default);
  CHECK(over.code == kPlanOverBudget);
  CHECK(over.out.find("default pool") != std::string::npos);
  CHECK(over.out.find("201 / 200") != std::string::npos);
}

TEST_CASE("heliosctl plan -o json") {
  PlanRequest r = seed003_request();
  r.json = true;
  Run out = run(r);
  CHECK(out.code == kPlanOverBudget);
  auto j = nlohmann::json::parse(out.out);
  CHECK(j["total"] == 204);
  CHECK(j["db_max_connections"] == 200);
  CHECK(j["fits"] == false);
  CHECK(j["over_by"] == 4);
  CHECK(j["tiers"].size() == 3);
  CHECK(j["tiers"][0]["name"] == "premium");
  CHECK(j["tiers"][0]["pool_size"] == 6);
  CHECK(j["tiers"][0]["connections"] == 150);
  CHECK(j["tiers"][2]["pool_size"] == 16);
  CHECK(j["toml"].get<std::string>().find("[tiers.free]") != std::string::npos);
}

TEST_CASE("heliosctl plan: bad input exits 2 with a message") {
  auto bad = [](PlanRequest r, const std::string& needle) {
    Run out = run(r);
    CAPTURE(out.err);
    CHECK(out.code == kPlanBadInput);
    CHECK(out.out.empty());
    CHECK(out.err.find(needle) != std::string::npos);
  };
  PlanRequest r = seed003_request();
  r.tier_specs.push_back("x:dedicated:1:0.1");
  bad(r, "expected NAME:MODE");
  r = seed003_request();
  r.tier_specs.push_back("x:pooled:1:0.1:1:1");
  bad(r, "mode must be dedicated or shared");
  r = seed003_request();
  r.tier_specs.push_back("x:shared:abc:0.1:1:1");
  bad(r, "peak_qps \"abc\" is not a number");
  r = seed003_request();
  r.tier_specs.push_back("x:shared:10:0.1:0.8:1");
  bad(r, "burst_factor must be between 1.0 and 1000");
  r = seed003_request();
  r.tier_specs.push_back("x:shared:10:0:1:1");
  bad(r, "mean_service_s must be > 0");
  r = seed003_request();
  r.tier_specs.push_back("x:dedicated:10:0.1:1:0");
  bad(r, "tenants must be at least 1");
  r = seed003_request();
  r.tier_specs.push_back("free:shared:10:0.1:1:1");
  bad(r, "tier \"free\" is defined twice");
  r = seed003_request();
  r.tier_specs.push_back("bad name:shared:10:0.1:1:1");
  bad(r, "must be 1-64 characters");
  r = seed003_request();
  r.tier_specs.push_back("x:shared:10:0.1:1:1:1:batch");
  bad(r, "pool_mode must be session, transaction or statement");
  r = seed003_request();
  r.db_max_connections.reset();
  bad(r, "max_connections is required");
  bad(PlanRequest{}, "no tiers to plan");
  // "2.0x" is accepted for the burst, as the seed writes it.
  CHECK(parse_tier_spec("p:dedicated:120:0.025:2.0x:25").ok());
}

TEST_CASE("heliosctl plan --file: seed 003 as a plan file, tiers in file order") {
  std::string path = temp_file(R"(# seed 003
[database]
max_connections = 200
reserved = 20

[tiers.premium]
mode = "dedicated"
peak_qps = 120
mean_service_s = 0.025
burst_factor = 2.0
expected_tenants = 25

[tiers.standard]
mode = "shared"
peak_qps = 300
mean_service_s = 0.040
burst_factor = 1.5

[tiers.free]
mode = "shared"
peak_qps = 200
mean_service_s = 0.060
burst_factor = 1.3
)");
  PlanRequest r;
  r.file = path;
  Run out = run(r);
  CHECK(out.code == kPlanOverBudget);
  CHECK(out.out.find("Total") != std::string::npos);
  CHECK(out.out.find("204 / 200") != std::string::npos);
  // File order, not alphabetical: premium, standard, free.
  size_t p = out.out.find("\npremium"), s = out.out.find("\nstandard"), f = out.out.find("\nfree");
  CHECK(p < s);
  CHECK(s < f);

  // Flags override the file and append tiers.
  r.db_max_connections = 300;
  r.tier_specs = {"batch:shared:10:1.0:1.0:1"};
  out = run(r);
  CHECK(out.code == kPlanFits);
  CHECK(out.out.find("214 / 300") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("plan files: errors name the file and line") {
  auto err_of = [](const std::string& text) {
    auto r = parse_plan_toml(text, "plan.toml");
    REQUIRE_FALSE(r.ok());
    return r.error().message;
  };
  CHECK(err_of("[database]\nmax_connections = 200\n[tiers.a]\nmode = \"shared\"\npeak_qps = "
               "10\nmean_service_s = 0.1\nburst_factor = 0.5\n") ==
        "plan.toml:7: [tiers.a] burst_factor must be between 1.0 and 1000 (the pool may not be "
        "smaller than its steady-state need), got 0.5");
  CHECK(err_of("[database]\nmax_conections = 200\n")
            .find("plan.toml:2: unknown key [database] "
                  "max_conections") == 0);
  CHECK(err_of("[tiers.a]\npeak_qps = \"lots\"\n")
            .find("plan.toml:2: [tiers.a] peak_qps must be "
                  "a number") == 0);
  CHECK(err_of("[tiers.a]\npeak_qps = 1\n").find("plan.toml:1: [tiers.a] needs mean_service_s") ==
        0);
  CHECK(err_of("[tiers.a]\npeak_qps = 1\nmean_service_s = 1\nmode = \"solo\"\n")
            .find("plan.toml:4: [tiers.a] mode must be \"dedicated\" or \"shared\"") == 0);
  CHECK(err_of("[tiers.a]\npeak_qps = 1\nmean_service_s = 1\nsize = 3\n")
            .find("plan.toml:4: unknown key [tiers.a] size") == 0);
  CHECK(err_of("[tiers.a]\npeak_qps = 1\nmean_service_s = 1\nexpected_tenants = -1\n")
            .find("plan.toml:4: [tiers.a] expected_tenants must be at least 1") == 0);
  CHECK(err_of("[pools]\nx = 1\n").find("plan.toml:1: unknown section [pools]") == 0);
  CHECK(err_of("[tiers.a\n").find("plan.toml:1: ") == 0);  // TOML syntax error
  CHECK(err_of("[database]\nmax_connections = 10\n") == "plan.toml: no [tiers.<name>] tables");

  PlanRequest missing;
  missing.file = "/nonexistent/plan.toml";
  Run out = run(missing);
  CHECK(out.code == kPlanBadInput);
  CHECK(out.err.find("/nonexistent/plan.toml") != std::string::npos);
}

TEST_CASE("heliosctl plan --instances: each instance's pools count, unless [fleet] shares them") {
  PlanRequest r = seed003_request();
  r.tier_specs[0] = "premium:dedicated:120:0.025:2.0:20";  // 154 in pools: fits one instance
  r.instances = 3;
  Run three = run(r);
  CHECK(three.code == kPlanOverBudget);
  CHECK(three.out.find("x 3 instances") != std::string::npos);
  CHECK(three.out.find("482 / 200") != std::string::npos);
  CHECK(three.out.find("over budget by 282: 462 in pools (154 per instance x 3 instances) + 20 "
                       "reserved = 482 connections") != std::string::npos);
  // The ways out: share the pools, or fewer dedicated tenants (4 x 6 x 3 + 122 = 194).
  CHECK(three.out.find("share the pools across the instances with [fleet] (then 174 of 200)") !=
        std::string::npos);
  CHECK(three.out.find("budget premium for at most 4 dedicated tenants (6 each)") !=
        std::string::npos);

  r.fleet = true;
  Run shared = run(r);
  CHECK(shared.code == kPlanFits);
  CHECK(shared.out.find("fits: 154 in pools (shared by 3 instances through [fleet]) + 20 "
                        "reserved = 174 of 200 connections, 26 spare") != std::string::npos);
  CHECK(shared.out.find("x 3 instances") == std::string::npos);

  r.fleet = false;
  r.json = true;
  auto j = nlohmann::json::parse(run(r).out);
  CHECK(j["instances"] == 3);
  CHECK(j["fleet"] == false);
  CHECK(j["per_instance"] == 154);
  CHECK(j["total"] == 482);
}

TEST_CASE("plan files: [proxy] instances and fleet") {
  std::string path = temp_file(
      "[database]\nmax_connections = 200\nreserved = 20\n"
      "[proxy]\ninstances = 2\nfleet = false\n"
      "[tiers.standard]\nmode = \"shared\"\npeak_qps = 300\nmean_service_s = 0.040\n"
      "burst_factor = 1.5\n");
  PlanRequest r;
  r.file = path;
  Run out = run(r);
  CHECK(out.code == kPlanFits);
  CHECK(out.out.find("36 in pools (18 per instance x 2 instances)") != std::string::npos);
  r.instances = 20;  // a flag wins over the file
  CHECK(run(r).code == kPlanOverBudget);
  std::remove(path.c_str());

  std::string bad = temp_file("[proxy]\ninstances = 0\n");
  Run zero = run(PlanRequest{.file = bad});
  CHECK(zero.code == kPlanBadInput);
  CHECK(zero.err.find(bad + ":2: [proxy] instances must be at least 1") != std::string::npos);
  std::remove(bad.c_str());
}

TEST_CASE("heliosctl plan --hosts: the budget is per host, with a health check per instance") {
  PlanRequest r = seed003_request();
  r.tier_specs[0] = "premium:dedicated:120:0.025:2.0:20";  // 154 in pools
  r.hosts = 3;
  Run one = run(r);
  CHECK(one.code == kPlanFits);
  CHECK(one.out.find("health check (3 hosts)") != std::string::npos);
  CHECK(one.out.find("fits on each of the 3 hosts: 154 in pools + 1 health check + 20 reserved = "
                     "175 of 200 connections, 25 spare") != std::string::npos);
  // Two instances sharing the pools through [fleet]: the pools once, a health check each.
  r.instances = 2;
  r.fleet = true;
  Run shared = run(r);
  CHECK(shared.code == kPlanFits);
  CHECK(shared.out.find("+ 2 health check + 20 reserved = 176 of 200") != std::string::npos);
  r.json = true;
  auto j = nlohmann::json::parse(run(r).out);
  CHECK(j["hosts"] == 3);
  CHECK(j["health_checks"] == 2);
  CHECK(j["total"] == 176);
  // One host (no [backend] hosts list): no health-check connection counted.
  PlanRequest single = seed003_request();
  single.tier_specs[0] = "premium:dedicated:120:0.025:2.0:20";
  CHECK(run(single).out.find("health check") == std::string::npos);
}
