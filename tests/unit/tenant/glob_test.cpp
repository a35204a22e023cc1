#include <doctest/doctest.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "tenant/glob.h"

using namespace helios;
using namespace helios::tenant;

namespace {

// Exponential reference matcher over compiled elements, for cross-checking on small inputs.
bool reference_match(const std::vector<GlobElement>& e, size_t pi, std::string_view t, size_t ti) {
  if (pi == e.size()) return ti == t.size();
  if (e[pi].star) {
    for (size_t k = ti; k <= t.size(); ++k)
      if (reference_match(e, pi + 1, t, k)) return true;
    return false;
  }
  return ti < t.size() && e[pi].accepts(static_cast<unsigned char>(t[ti])) &&
         reference_match(e, pi + 1, t, ti + 1);
}

void all_strings(std::string_view alphabet, size_t max_len, std::vector<std::string>& out) {
  out.push_back("");
  size_t begin = 0;
  for (size_t len = 1; len <= max_len; ++len) {
    size_t end = out.size();
    for (size_t i = begin; i < end; ++i)
      for (char c : alphabet) out.push_back(out[i] + c);
    begin = end;
  }
}

std::string random_pattern(std::mt19937& rng) {
  static const std::vector<std::string> atoms = {"a",    "b",     "c",   "*", "?",    "[ab]",
                                                 "[!a]", "[a-c]", "\\*", "*", "[!bc]"};
  std::uniform_int_distribution<size_t> len(1, 5), pick(0, atoms.size() - 1);
  std::string p;
  for (size_t i = len(rng); i > 0; --i) p += atoms[pick(rng)];
  return p;
}

}  // namespace

TEST_CASE("glob_match: literals, wildcards, classes, escapes") {
  CHECK(glob_match("tenant_*", "tenant_acme"));
  CHECK(glob_match("tenant_*", "tenant_"));
  CHECK_FALSE(glob_match("tenant_*", "tenant"));
  CHECK_FALSE(glob_match("tenant_*", "premium_tenant_x"));
  CHECK(glob_match("premium_tenant_*", "premium_tenant_x"));
  CHECK(glob_match("*", ""));
  CHECK(glob_match("a?c", "abc"));
  CHECK_FALSE(glob_match("a?c", "ac"));
  CHECK(glob_match("t[abc]x", "tbx"));
  CHECK_FALSE(glob_match("t[abc]x", "tdx"));
  CHECK(glob_match("t[a-z]x", "tqx"));
  CHECK_FALSE(glob_match("t[a-z]x", "tQx"));
  CHECK(glob_match("t[!x]y", "tay"));
  CHECK_FALSE(glob_match("t[!x]y", "txy"));
  CHECK(glob_match("t[^x]y", "tay"));
  CHECK(glob_match("[]]", "]"));
  CHECK(glob_match("[!]]", "a"));
  CHECK_FALSE(glob_match("[!]]", "]"));
  CHECK(glob_match("[a-]", "-"));
  CHECK(glob_match("[-a]", "-"));
  CHECK(glob_match("\\*", "*"));
  CHECK_FALSE(glob_match("\\*", "x"));
  CHECK(glob_match("a\\?", "a?"));
  CHECK_FALSE(glob_match("a\\?", "ab"));
  CHECK(glob_match("[\\]]", "]"));
  CHECK(glob_match("[a\\-z]", "-"));
  CHECK_FALSE(glob_match("[a\\-z]", "m"));
  CHECK(glob_match("*a*b*c*", "xxaxxbxxcxx"));
  CHECK_FALSE(glob_match("*a*b*c*", "xxaxxcxxbxx"));
  CHECK(glob_match("**x", "x"));
}

TEST_CASE("glob_validate rejects malformed patterns, which then match nothing") {
  CHECK(glob_validate("tenant_[a-z]*"));
  for (const char* p : {"", "tenant_[abc", "abc\\", "[z-a]", "[a\\"}) {
    CAPTURE(p);
    Status s = glob_validate(p);
    CHECK_FALSE(s.ok());
    CHECK_FALSE(glob_match(p, p));
    CHECK_FALSE(glob_match(p, ""));
  }
  CHECK(glob_validate("tenant_[abc").error().message.find("unterminated '['") != std::string::npos);
  CHECK(glob_validate("tenant_[abc").error().message.find("offset 7") != std::string::npos);
}

TEST_CASE("glob_match agrees with an exhaustive reference matcher") {
  std::mt19937 rng(12345);
  std::vector<std::string> texts;
  all_strings("abc*", 5, texts);
  for (int n = 0; n < 300; ++n) {
    std::string p = random_pattern(rng);
    auto g = Glob::compile(p);
    REQUIRE(g.ok());
    for (const auto& t : texts) {
      bool ref = reference_match(g->elements(), 0, t, 0);
      if (glob_match(p, t) != ref) {
        FAIL("pattern " << p << " text " << t << " reference " << ref);
      }
    }
  }
}

TEST_CASE("glob_match has no exponential blow-up") {
  std::string pattern = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
  std::string text(5000, 'a');
  auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(glob_match(pattern, text));
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took < std::chrono::milliseconds(200));

  std::string ov_a = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", ov_b = "*a*a*a*a*a*a*a*a*a*a*a*a*a*c";
  start = std::chrono::steady_clock::now();
  CHECK_FALSE(globs_overlap(ov_a, ov_b));  // one must end in b, the other in c
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(200));
}

TEST_CASE("glob_specificity: literals count most, then classes, then ?, then *") {
  CHECK(glob_specificity("premium_tenant_*") > glob_specificity("tenant_*"));
  CHECK(glob_specificity("tenant_*") > glob_specificity("*"));
  CHECK(glob_specificity("*") == 0);
  CHECK(glob_specificity("abc") == 12);
  CHECK(glob_specificity("ab[c]") == 12);  // a one-member class fixes the byte
  CHECK(glob_specificity("ab[cd]") == 10);
  CHECK(glob_specificity("ab[!c]") == 10);
  CHECK(glob_specificity("ab?") == 9);
  CHECK(glob_specificity("a*b*") == 8);
  CHECK(glob_specificity("\\*") == 4);
  CHECK(glob_specificity("[") == 0);  // invalid
}

TEST_CASE("globs_overlap and overlap_example") {
  CHECK(globs_overlap("tenant_*", "*_acme"));
  auto ex = overlap_example("tenant_*", "*_acme");
  REQUIRE(ex.has_value());
  CHECK(glob_match("tenant_*", *ex));
  CHECK(glob_match("*_acme", *ex));
  CHECK(*ex == "tenant_acme");  // shortest

  CHECK(globs_overlap("tenant_*", "premium_tenant_*") == false);
  CHECK(globs_overlap("tenant_*", "*tenant_*"));
  CHECK_FALSE(globs_overlap("t[a-c]", "t[d-f]"));
  CHECK(globs_overlap("t[a-c]", "t[c-f]"));
  CHECK(*overlap_example("t[a-c]", "t[c-f]") == "tc");
  CHECK_FALSE(globs_overlap("t[!x]", "tx"));
  CHECK(globs_overlap("t[!x]", "t?"));
  CHECK(globs_overlap("a\\*", "a?"));
  CHECK(*overlap_example("a\\*", "a?") == "a*");
  CHECK_FALSE(globs_overlap("a\\*", "ab"));
  CHECK_FALSE(globs_overlap("abc", "ab"));
  CHECK(globs_overlap("*", "*"));
  CHECK(*overlap_example("*", "*") == "");
  CHECK_FALSE(globs_overlap("[", "*"));  // invalid never overlaps
}

TEST_CASE("globs_overlap agrees with brute force; examples match both patterns") {
  std::mt19937 rng(777);
  std::vector<std::string> texts;
  all_strings("abcz*", 5, texts);
  for (int n = 0; n < 400; ++n) {
    std::string a = random_pattern(rng), b = random_pattern(rng);
    CAPTURE(a);
    CAPTURE(b);
    bool brute = false;
    for (const auto& t : texts)
      if (glob_match(a, t) && glob_match(b, t)) {
        brute = true;
        break;
      }
    auto ex = overlap_example(a, b);
    CHECK(globs_overlap(a, b) == ex.has_value());
    if (brute) CHECK(ex.has_value());
    if (ex) {
      CHECK(glob_match(a, *ex));
      CHECK(glob_match(b, *ex));
    }
  }
}

TEST_CASE("RuleMatcher picks the most specific matching pattern") {
  RuleMatcher m({"tenant_*", "premium_tenant_*", "*", "tenant_acme"});
  CHECK(m.match("tenant_acme") == 3);
  CHECK(m.match("tenant_other") == 0);
  CHECK(m.match("premium_tenant_x") == 1);
  CHECK(m.match("someone") == 2);

  RuleMatcher no_default({"tenant_*"});
  CHECK(no_default.match("other") == -1);

  // Ties (invalid in a config) resolve to the earlier rule, deterministically.
  RuleMatcher tie({"t*x", "tx*"});
  CHECK(glob_specificity("t*x") == glob_specificity("tx*"));
  CHECK(tie.match("txx") == 0);
  RuleMatcher tie2({"tx*", "t*x"});
  CHECK(tie2.match("txx") == 0);

  auto bad = RuleMatcher::build({"ok_*", "bad_[x"});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("pattern 1") != std::string::npos);
  RuleMatcher lenient({"bad_[x", "b*"});
  CHECK(lenient.match("bad_[x") == 1);
}
