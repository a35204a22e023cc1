// Tenant-name globs: matching, precedence and overlap detection for [[tenant_quotas.limits]].
//
// Syntax (bytes, not code points; tenant names are compared byte by byte):
//   *        any run of bytes, including none
//   ?        exactly one byte
//   [abc]    one byte from the set;  [a-z] a range;  [!x] or [^x] any byte except those listed
//            a ']' right after '[' (or after '[!') is a member; '-' first or last is a member
//   \c       the byte c taken literally (also inside a class)
//   other    the byte itself
// Invalid patterns (unterminated class, trailing '\', reversed range such as [z-a], empty
// pattern) match nothing; glob_validate() says why, and the config check calls it first.
//
// Specificity (glob_specificity) is an integer in quarter-characters: how much of a tenant name
// the pattern pins down.
//   literal byte, or a class with exactly one member      4
//   class with 2..255 members (negated or not)            2
//   ?  (or a class that admits all 256 bytes)             1
//   *                                                     0
// So "premium_tenant_*" (15 literals = 60) beats "tenant_*" (7 literals = 28) beats "*" (0).
// Two rules are ambiguous when their patterns overlap (some name matches both) and their
// specificities are equal; a valid config has no such pair.
//
// All matching is iterative and polynomial: glob_match is O(|pattern| * |text|) worst case,
// globs_overlap / overlap_example walk the product automaton, O(|a| * |b|) states.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace helios::tenant {

// One position of a compiled glob: either '*' or a set of bytes that consumes exactly one byte.
struct GlobElement {
  bool star = false;
  std::array<uint64_t, 4> set{};  // bit b set: byte b accepted (unused when star)

  bool accepts(unsigned char c) const { return (set[c >> 6] >> (c & 63)) & 1; }
  int member_count() const;
};

// A parsed pattern. Compile once (config load), match many times (connect time).
class Glob {
 public:
  static Result<Glob> compile(std::string_view pattern);

  bool match(std::string_view text) const;
  int specificity() const;
  const std::vector<GlobElement>& elements() const { return elements_; }

 private:
  std::vector<GlobElement> elements_;
};

// Ok, or Error{EINVAL, "<what is wrong> at offset N"}.
Status glob_validate(std::string_view pattern);

bool glob_match(std::string_view pattern, std::string_view text);
int glob_specificity(std::string_view pattern);

// True when some string matches both patterns (false if either is invalid).
bool globs_overlap(std::string_view a, std::string_view b);
// A shortest string both patterns match, preferring readable bytes (letters, digits, '_'),
// or nullopt when they do not overlap.
std::optional<std::string> overlap_example(std::string_view a, std::string_view b);

// Most-specific-wins lookup over an ordered list of patterns (rule order from the config).
class RuleMatcher {
 public:
  RuleMatcher() = default;
  // Invalid patterns are kept in place but never match.
  explicit RuleMatcher(const std::vector<std::string>& patterns);
  // Like the constructor, but fails on the first invalid pattern, naming its index.
  static Result<RuleMatcher> build(const std::vector<std::string>& patterns);

  // Index (into the list given to build) of the most specific matching pattern; among equally
  // specific matches the earliest wins. -1 when nothing matches.
  int match(std::string_view tenant) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    Glob glob;
    int specificity;
    int index;
  };
  std::vector<Entry> entries_;  // sorted by specificity descending, then index ascending
};

}  // namespace helios::tenant
